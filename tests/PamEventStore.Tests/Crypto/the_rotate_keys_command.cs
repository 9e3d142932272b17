using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Marten;
using PamEventStore.Crypto;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Crypto;

/// <summary>
/// Master key rotation as the README tells an operator to do it: add the new key, make it active, run
/// <c>rotate-keys --rewrap</c> (the real command line), then remove the old key.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class the_rotate_keys_command(PamStoreHost store)
{
    private const string NewMasterKeyId = "test-master-2";
    private readonly Org _org = store.NewOrg();
    private readonly string _newMasterKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>The service's settings with the new master key added as the active one.</summary>
    private Dictionary<string, string> WithBothMasterKeys => new(store.ProcessSettings)
    {
        [$"Encryption:MasterKeys:{NewMasterKeyId}"] = _newMasterKey,
        ["Encryption:ActiveMasterKeyId"] = NewMasterKeyId,
    };

    /// <summary>The service's settings once the old master key is removed.</summary>
    private Dictionary<string, string> WithOnlyTheNewMasterKey
    {
        get
        {
            var settings = WithBothMasterKeys;
            settings.Remove($"Encryption:MasterKeys:{TestKeys.MasterKeyId}").ShouldBeTrue();
            return settings;
        }
    }

    private async Task<OrgKeyRing> KeyRing()
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await query.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId)).ShouldNotBeNull();
    }

    private static async Task<Reply> Send(ServiceProcess service, HttpMethod method, string url, string token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Reply.From(await service.Client.SendAsync(request));
    }

    [Fact]
    public async Task rewrap_moves_an_orgs_keys_to_the_new_master_key_and_the_service_reads_old_batches_without_the_old_one()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
        var before = await KeyRing();
        before.Keys.Append(before.FingerprintKey!).ShouldAllBe(k => k.MasterKeyId == TestKeys.MasterKeyId);

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(WithBothMasterKeys, "rotate-keys", "--rewrap", "--org", _org.Id);

        exitCode.ShouldBe(0, output);
        output.ShouldContain($"{_org.Id}: re-wrapped 2 data key(s)"); // the data key and the fingerprint key

        // The same keys (batches name them), now wrapped by the new master key.
        var after = await KeyRing();
        after.ActiveKeyId.ShouldBe(before.ActiveKeyId);
        after.Keys.Select(k => k.KeyId).ShouldBe(before.Keys.Select(k => k.KeyId));
        after.FingerprintKey!.KeyId.ShouldBe(before.FingerprintKey!.KeyId);
        after.Keys.Append(after.FingerprintKey).ShouldAllBe(k => k.MasterKeyId == NewMasterKeyId);
        after.Keys[0].Wrapped.ShouldNotBe(before.Keys[0].Wrapped);

        // The old master key removed: the service still reads what was sealed before, and records on.
        await using (var service = await ServiceProcess.StartAsync(WithOnlyTheNewMasterKey))
        {
            var gateway = TestKeys.Token(TokenClaims.ForGateway(_org.Id, Org.Gateway));
            var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Lines(3, 2)));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            (await Send(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=300", gateway, content)).ShouldBeAccepted(1);

            var page = await Send(service, HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", _org.UserToken());
            page.Status.ShouldBe(HttpStatusCode.OK, page.Body.ToString());
            page.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldBe(["ok", "ok"]);
            page.Body.GetProperty("logs").EnumerateArray().Select(e => Encoding.UTF8.GetString(e.GetProperty("data").GetBytesFromBase64()))
                .ShouldBe(Enumerable.Range(0, 5).Select(i => $"line {i}\r\n"));
        }

        // Run again, there is nothing left to re-wrap.
        var (againExitCode, againOutput) = await ServiceProcess.RunCommandAsync(WithOnlyTheNewMasterKey, "rotate-keys", "--rewrap", "--org", _org.Id);
        againExitCode.ShouldBe(0, againOutput);
        againOutput.ShouldContain($"{_org.Id}: re-wrapped 0 data key(s)");
    }

    [Theory]
    [InlineData("--rewrap")]
    [InlineData(null)]
    public async Task an_org_without_a_key_ring_is_refused_and_given_none(string? rewrap)
    {
        // A mistyped org: its own key ring would be made, and the org meant left as it was.
        var mistyped = $"{_org.Id}-typo";
        string[] arguments = rewrap is null ? ["rotate-keys", "--org", mistyped] : ["rotate-keys", rewrap, "--org", mistyped];

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(store.ProcessSettings, arguments);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain($"'{mistyped}' has no key ring");
        await using var query = store.Host.DocumentStore().QuerySession(mistyped);
        (await query.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId)).ShouldBeNull();
    }
}
