using System.Net;
using Microsoft.Extensions.DependencyInjection;
using PamEventStore.Crypto;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Crypto;

/// <summary>
/// A node whose configuration lacks a master key an org's keys are wrapped with, or an org whose key ring
/// was altered, can neither record nor read that org: every request that needs the keys is a clear 503
/// an operator can act on, never a 500, and nothing is stored or changed meanwhile.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_an_orgs_keys_do_not_open(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private const string FingerprintKey = "{fingerprintKey,wrapped}";

    /// <summary>A session with one batch, then the org's fingerprint key damaged and the node made to load its ring again.</summary>
    private async Task<(Guid Session, string Wrapped)> SessionWithDamagedKeysAsync()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);

        var wrapped = await StoredEvents.ScalarAsync<string>(store,
            "select data #>> @path::text[] from pam.mt_doc_orgkeyring where tenant_id = @org", ("path", FingerprintKey), ("org", _org.Id));
        await SetFingerprintKeyAsync(Convert.ToBase64String(new byte[60]));
        return (session, wrapped);
    }

    private async Task SetFingerprintKeyAsync(string wrapped)
    {
        (await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_orgkeyring set data = jsonb_set(data, @path::text[], to_jsonb(@wrapped::text)) where tenant_id = @org",
            ("path", FingerprintKey), ("wrapped", wrapped), ("org", _org.Id))).ShouldBe(1);
        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);
    }

    private static void ShouldBeKeysUnavailable(Reply reply)
    {
        reply.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "keys-unavailable");
        reply.Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(30));
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("master key");
    }

    [Fact]
    public async Task uploads_are_refused_with_a_503_and_nothing_is_stored()
    {
        var (session, _) = await SessionWithDamagedKeysAsync();

        ShouldBeKeysUnavailable(await _org.UploadAsync(session, 100, Lines(2, 3), endOffset: 200));
        ShouldBeKeysUnavailable(await _org.UploadLegacyAsync(session, Lines(0, 3)));

        var view = await _org.SessionAsync(session);
        view.GetProperty("batchCount").GetInt64().ShouldBe(1);
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task a_log_page_is_refused_with_a_503_while_the_session_itself_still_reads()
    {
        var (session, _) = await SessionWithDamagedKeysAsync();

        ShouldBeKeysUnavailable(await _org.LogsAsync(session));
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt64().ShouldBe(1);
    }

    [Fact]
    public async Task a_live_tail_is_refused_with_a_503_before_its_stream_opens()
    {
        var (session, _) = await SessionWithDamagedKeysAsync();

        ShouldBeKeysUnavailable(await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/live?from=0", _org.UserToken()));
    }

    [Fact]
    public async Task creating_and_ending_are_refused_with_a_503_and_change_nothing()
    {
        var (session, _) = await SessionWithDamagedKeysAsync();
        var id = Guid.NewGuid();

        ShouldBeKeysUnavailable(await _org.CreateAsync(new { id, projectId = "project-1", resourceType = "ssh", resourceName = "web-1", accountName = "root", userId = "alice", gatewayId = Org.Gateway }));
        ShouldBeKeysUnavailable(await _org.EndAsync(session));

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("active");
    }

    [Fact]
    public async Task once_the_keys_open_again_the_session_is_recorded_and_read_as_before()
    {
        var (session, wrapped) = await SessionWithDamagedKeysAsync();
        ShouldBeKeysUnavailable(await _org.UploadAsync(session, 100, Lines(2, 3), endOffset: 200));

        await SetFingerprintKeyAsync(wrapped);

        (await _org.UploadAsync(session, 100, Lines(2, 3), endOffset: 200)).ShouldBeAccepted(1);
        (await _org.LogsAsync(session)).Body.GetProperty("logs").GetArrayLength().ShouldBe(5);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity", _org.UserToken())).Body
            .GetProperty("integrity").GetProperty("intact").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task a_ring_whose_active_key_is_gone_refuses_uploads_the_same_way()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);
        (await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_orgkeyring set data = jsonb_set(data, '{activeKeyId}', '\"dk-gone\"') where tenant_id = @org",
            ("org", _org.Id))).ShouldBe(1);

        ShouldBeKeysUnavailable(await _org.UploadAsync(session, 100, Lines(2, 3), endOffset: 200));
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt64().ShouldBe(1);
    }
}
