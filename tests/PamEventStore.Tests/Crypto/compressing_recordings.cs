using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using PamEventStore.Crypto;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Crypto;

/// <summary>
/// Recorded content is compressed before it is encrypted (it is JSON, and compresses to a quarter or
/// less), reads back byte for byte, and the encoding it was stored with cannot be switched unnoticed.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class compressing_recordings(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    /// <summary>A shell's output as a gateway records it: many similar lines.</summary>
    private static string ShellOutput(int first, int count) =>
        Batch(Enumerable.Range(first, count).Select(i => Terminal(i, $"postgres  {1000 + i}  0.3  1.2 Dec  4 10:{i % 60:00} /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main\r\n")).ToArray());

    private async Task<T> StoredAsync<T>(Guid session) where T : IEncryptedRecording
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await query.Events.FetchStreamAsync(session)).Select(e => e.Data).OfType<T>().First();
    }

    private static string LogsOf(JsonElement page) => page.GetProperty("logs").GetRawText();

    [Fact]
    public async Task a_batch_is_stored_compressed_and_reads_back_as_it_was_uploaded()
    {
        var session = await _org.CreateSessionAsync();
        var plain = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, ShellOutput(0, 60))).ShouldBeAccepted(0);
        await StoredEvents.SeedBatchesAsync(store, _org, plain, 0);

        var stored = await StoredAsync<BatchUploaded>(session);
        var page = (await _org.LogsAsync(session)).Body;

        stored.ContentEncoding.ShouldBe(PackedContent.Deflate);
        stored.Ciphertext.Length.ShouldBeLessThan(stored.PlaintextBytes / 4);
        page.GetProperty("batches")[0].GetProperty("status").GetString().ShouldBe("ok");
        var logs = page.GetProperty("logs");
        logs.GetArrayLength().ShouldBe(60);
        Encoding.UTF8.GetString(Convert.FromBase64String(logs[59].GetProperty("data").GetString()!)).ShouldContain("10:59 /usr/lib/postgresql/15");
    }

    [Fact]
    public async Task a_legacy_recording_is_stored_compressed_and_reads_back_whole()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        var events = Batch(Enumerable.Range(0, 500).Select(i => Query(i, $"select * from accounts where id = {i}", $"{i} | alice | active")).ToArray());
        (await _org.UploadLegacyAsync(session, events)).Status.ShouldBe(HttpStatusCode.OK);

        var stored = await StoredAsync<LegacyLogsUploaded>(session);
        var page = (await _org.LogsAsync(session)).Body;

        stored.ContentEncoding.ShouldBe(PackedContent.Deflate);
        stored.Ciphertext.Length.ShouldBeLessThan(stored.PlaintextBytes / 4);
        page.GetProperty("logs").GetArrayLength().ShouldBe(500);
        page.GetProperty("logs")[499].GetProperty("input").GetString().ShouldBe("select * from accounts where id = 499");
    }

    [Fact]
    public async Task batches_stored_uncompressed_by_earlier_versions_still_read_and_verify()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, ShellOutput(100, 5))).ShouldBeAccepted(0);
        await StoredEvents.SeedBatchesAsync(store, _org, session, 3, compressed: false);
        (await _org.UploadAsync(session, 400, ShellOutput(0, 20))).ShouldBeAccepted(4);

        var page = (await _org.LogsAsync(session)).Body;
        var integrity = (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity", _org.UserToken())).Body.GetProperty("integrity");

        page.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldBe(["ok", "ok", "ok", "ok", "ok"]);
        page.GetProperty("logs").GetArrayLength().ShouldBe(5 + 3 + 20);
        integrity.GetProperty("intact").GetBoolean().ShouldBeTrue(integrity.ToString());
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        (await query.Events.FetchStreamAsync(session)).Select(e => e.Data).OfType<BatchUploaded>().Select(b => b.ContentEncoding)
            .ShouldBe([PackedContent.Deflate, null, null, null, PackedContent.Deflate]);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("gzip")]
    public async Task a_stored_batch_whose_encoding_is_switched_reads_as_undecryptable_and_fails_its_link(string? switchedTo)
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, ShellOutput(0, 30))).ShouldBeAccepted(0);
        (await _org.UploadAsync(session, 10_000, ShellOutput(30, 30))).ShouldBeAccepted(1);
        var stored = await StoredAsync<BatchUploaded>(session);
        var row = new EncryptedRecordingSerializer().Serialize(typeof(BatchUploaded), stored with { ContentEncoding = switchedTo });
        (await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set bdata = @row where {StoredEvents.BatchRow}",
            [.. StoredEvents.BatchRowParameters(_org, session, 0), ("row", (object)row)])).ShouldBe(1);

        var page = (await _org.LogsAsync(session)).Body;
        var integrity = (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity", _org.UserToken())).Body.GetProperty("integrity");

        page.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldBe(["undecryptable", "ok"]);
        page.GetProperty("logs").GetArrayLength().ShouldBe(30);
        integrity.GetProperty("intact").GetBoolean().ShouldBeFalse();
        integrity.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()).ShouldContain("undecryptable");
    }

    [Fact]
    public async Task a_node_told_not_to_compress_stores_content_as_it_is_and_it_reads_as_any_other()
    {
        var batched = await _org.CreateSessionAsync();
        var legacy = await _org.CreateSessionAsync(resourceType: "postgres");
        await using var node = await ServiceProcess.StartAsync(new Dictionary<string, string>(store.ProcessSettings) { ["Uploads:CompressContent"] = "false" });
        async Task<HttpStatusCode> Upload(string path, string body, string contentType = "application/octet-stream")
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"{Org.Sessions}/{path}") { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _org.GatewayToken());
            return (await node.Client.SendAsync(request)).StatusCode;
        }

        (await Upload($"{batched}/event-batches?startOffset=0", ShellOutput(0, 30))).ShouldBe(HttpStatusCode.OK);
        (await Upload($"{legacy}/logs", $$"""{"logs":{{Queries(200)}}}""", "application/json")).ShouldBe(HttpStatusCode.OK);

        var stored = await StoredAsync<BatchUploaded>(batched);
        stored.ContentEncoding.ShouldBeNull();
        stored.Ciphertext.Length.ShouldBe(stored.PlaintextBytes + 28);
        (await StoredAsync<LegacyLogsUploaded>(legacy)).ContentEncoding.ShouldBeNull();
        (await _org.LogsAsync(batched)).Body.GetProperty("logs").GetArrayLength().ShouldBe(30);
        (await _org.LogsAsync(legacy)).Body.GetProperty("logs").GetArrayLength().ShouldBe(200);
    }

    [Fact]
    public void a_recording_whose_compressed_form_passes_128_MiB_still_unpacks()
    {
        // Uploads:MaxLegacyLogsBytes may be raised that far. Seven random bits a byte compress only a little,
        // so sixteen times the compressed length no longer fits an int.
        var content = new byte[150_000_000];
        new Random(3).NextBytes(content);
        for (var i = 0; i < content.Length; i++) content[i] &= 0x7F;

        var packed = PackedContent.Pack(content);

        packed.Encoding.ShouldBe(PackedContent.Deflate);
        packed.Bytes.Length.ShouldBeGreaterThan(int.MaxValue / 16);
        PackedContent.Unpack(packed.Encoding, packed.Bytes, content.Length).AsSpan().SequenceEqual(content).ShouldBeTrue();
    }

    [Fact]
    public void packed_content_unpacks_to_exactly_what_was_packed()
    {
        var content = Encoding.UTF8.GetBytes(ShellOutput(0, 40));

        var packed = PackedContent.Pack(content);

        packed.Encoding.ShouldBe(PackedContent.Deflate);
        packed.Bytes.Length.ShouldBeLessThan(content.Length / 4);
        PackedContent.Unpack(packed.Encoding, packed.Bytes, content.Length).ShouldBe(content);
    }

    [Fact]
    public void content_that_would_not_shrink_is_kept_as_it_is()
    {
        var random = RandomNumberGenerator.GetBytes(4096);
        var tiny = "[]"u8.ToArray();

        PackedContent.Pack(random).ShouldBe(new PackedContent(random, null), new PackedComparer());
        PackedContent.Pack(tiny).ShouldBe(new PackedContent(tiny, null), new PackedComparer());
        PackedContent.Unpack(null, random, random.Length).ShouldBeSameAs(random);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    [InlineData(int.MaxValue)]
    public void packed_content_that_does_not_give_its_recorded_length_does_not_unpack(int lengthOff)
    {
        var content = Encoding.UTF8.GetBytes(ShellOutput(0, 40));
        var packed = PackedContent.Pack(content);
        var claimed = lengthOff == int.MaxValue ? int.MaxValue : content.Length + lengthOff;

        // A claimed length of 2 GiB is not allocated up front: what the bytes hold is, and then found short.
        Should.Throw<CryptographicException>(() => PackedContent.Unpack(packed.Encoding, packed.Bytes, claimed));
    }

    [Fact]
    public void an_unknown_encoding_or_bytes_that_are_not_deflate_do_not_unpack()
    {
        var content = Encoding.UTF8.GetBytes(ShellOutput(0, 40));
        var packed = PackedContent.Pack(content);

        Should.Throw<CryptographicException>(() => PackedContent.Unpack("gzip", packed.Bytes, content.Length));
        Should.Throw<CryptographicException>(() => PackedContent.Unpack(PackedContent.Deflate, content, content.Length));
        Should.Throw<CryptographicException>(() => PackedContent.Unpack(PackedContent.Deflate, packed.Bytes[..^4], content.Length));
    }

    private sealed class PackedComparer : IEqualityComparer<PackedContent>
    {
        public bool Equals(PackedContent? x, PackedContent? y) => x!.Encoding == y!.Encoding && x.Bytes.AsSpan().SequenceEqual(y.Bytes);

        public int GetHashCode(PackedContent obj) => obj.Bytes.Length;
    }
}
