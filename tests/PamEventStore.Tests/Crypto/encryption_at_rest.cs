using System.Net;
using System.Security.Cryptography;
using System.Text;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PamEventStore.Crypto;
using PamEventStore.Recording;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Crypto;

[Collection(PamStoreCollection.Name)]
public sealed class encryption_at_rest(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private RecordingCipher Cipher => store.Host.Services.GetRequiredService<RecordingCipher>();

    /// <summary>How many rows of any table hold <paramref name="needle"/>, in any column.</summary>
    private async Task<List<string>> TablesContaining(string needle)
    {
        await using var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand(
                         "select quote_ident(table_schema) || '.' || quote_ident(table_name) from information_schema.tables " +
                         "where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }

        var found = new List<string>();
        foreach (var table in tables)
        {
            // A row as text shows bytea as hex, jsonb and text as they are.
            await using var search = new NpgsqlCommand($"select count(*) from {table} t where strpos(t::text, @needle) > 0", connection);
            search.Parameters.AddWithValue("needle", needle);
            if ((long)(await search.ExecuteScalarAsync())! > 0) found.Add(table);
        }

        return found;
    }

    [Fact]
    public async Task no_table_holds_recorded_content_in_plaintext()
    {
        var marker = $"MARKER-{Guid.NewGuid():N}";
        var markerBytes = Encoding.UTF8.GetBytes(marker);
        var ssh = await _org.CreateSessionAsync();
        var sql = await _org.CreateSessionAsync(resourceType: "postgres");
        var k8s = await _org.CreateSessionAsync(resourceType: "kubernetes");
        var legacy = await _org.CreateSessionAsync(resourceType: "mysql");

        (await _org.UploadAsync(ssh, 0, Batch(Terminal(0, marker)))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadAsync(ssh, 0, Batch(Terminal(0, marker + " tampered")))).Status.ShouldBe(HttpStatusCode.Conflict);
        (await _org.UploadAsync(sql, 0, Batch(Query(0, $"select '{marker}'", marker)))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadAsync(k8s, 0, Batch(HttpRequest(0, "r1", $"/api/v1/namespaces/{marker}"), HttpResponse(1, "r1", body: marker)))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadLegacyAsync(legacy, Batch(Query(0, marker)))).Status.ShouldBe(HttpStatusCode.OK);

        // The recordings are there, and they read back...
        (await _org.LogsAsync(sql)).Body.GetProperty("logs")[0].GetProperty("output").GetString().ShouldBe(marker);

        // ...but no table holds them as text, as bytes, or base64 encoded.
        (await TablesContaining(marker)).ShouldBeEmpty();
        (await TablesContaining(Convert.ToHexStringLower(markerBytes))).ShouldBeEmpty();
        (await TablesContaining(Convert.ToBase64String(markerBytes))).ShouldBeEmpty();

        // Nor a plain hash of it, which a short command could be guessed back from: only keyed fingerprints.
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(Batch(Query(0, $"select '{marker}'", marker))), out var canonical, out _).ShouldBeTrue();
        var plainHash = canonical!.Sha256();
        (await TablesContaining(Convert.ToHexStringLower(plainHash))).ShouldBeEmpty();
        (await TablesContaining(Convert.ToBase64String(plainHash))).ShouldBeEmpty();
    }

    [Fact]
    public async Task the_marker_search_does_find_what_is_stored_in_plaintext()
    {
        // The check above can fail: session metadata is stored in the clear, and it finds it.
        var marker = $"RESOURCE-{Guid.NewGuid():N}";
        await _org.CreateAsync(new { projectId = "p", resourceType = "ssh", resourceName = marker, accountName = "root", userId = "alice", gatewayId = "gw-1" });

        (await TablesContaining(marker)).ShouldNotBeEmpty();
    }

    [Fact]
    public async Task each_org_seals_with_its_own_data_key()
    {
        var other = store.NewOrg();
        var mine = await _org.CreateSessionAsync();
        var theirs = await other.CreateSessionAsync();
        await _org.UploadAsync(mine, 0, Lines(0, 1));
        await other.UploadAsync(theirs, 0, Lines(0, 1));

        (await KeyIds(_org, mine)).Single().ShouldNotBe((await KeyIds(other, theirs)).Single());
    }

    [Fact]
    public async Task after_a_key_rotation_new_batches_use_the_new_key_and_old_ones_still_read()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));

        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);
        await _org.UploadAsync(session, 100, Lines(1, 1));

        var keys = await KeyIds(_org, session);
        keys.Distinct().Count().ShouldBe(2);
        var page = (await _org.LogsAsync(session)).Body;
        page.GetProperty("batches").EnumerateArray().ShouldAllBe(b => b.GetProperty("status").GetString() == "ok");
        page.GetProperty("logs").GetArrayLength().ShouldBe(2);
    }

    [Fact]
    public async Task after_a_master_key_rotation_rewrapped_data_keys_open_without_the_old_master_key()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        var sealedBatch = await StoredBatch(session, 0);
        var documents = store.Host.DocumentStore();
        var oldMaster = Convert.FromBase64String(TestKeys.MasterKey);
        var newMaster = RandomNumberGenerator.GetBytes(32);

        var both = new MasterKeys(new Dictionary<string, byte[]> { [TestKeys.MasterKeyId] = oldMaster, ["next"] = newMaster }, "next");
        // The data key and the fingerprint key.
        var rewrap = await new OrgDataKeys(documents, both, TimeProvider.System).RewrapAsync(_org.Id, CancellationToken.None);
        rewrap.Rewrapped.ShouldBe(2);
        rewrap.Unopenable.ShouldBeEmpty();

        var onlyNew = new RecordingCipher(new OrgDataKeys(documents, new MasterKeys(new Dictionary<string, byte[]> { ["next"] = newMaster }, "next"), TimeProvider.System));
        var content = await onlyNew.OpenAsync(new BatchPlace(_org.Id, session, 0, 0), sealedBatch, CancellationToken.None);
        (await onlyNew.FingerprintAsync(_org.Id, CancellationToken.None))!.Matches(SHA256.HashData(content), sealedBatch.ContentFingerprint).ShouldBeTrue();

        var onlyOld = new RecordingCipher(new OrgDataKeys(documents, new MasterKeys(new Dictionary<string, byte[]> { [TestKeys.MasterKeyId] = oldMaster }, TestKeys.MasterKeyId), TimeProvider.System));
        await Should.ThrowAsync<Exception>(() => onlyOld.OpenAsync(new BatchPlace(_org.Id, session, 0, 0), sealedBatch, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task a_rewrap_that_meets_a_key_it_cannot_open_rewraps_the_others_and_names_it()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        var documents = store.Host.DocumentStore();
        var first = Convert.FromBase64String(TestKeys.MasterKey);
        var second = RandomNumberGenerator.GetBytes(32);
        var third = RandomNumberGenerator.GetBytes(32);
        var rotated = await new OrgDataKeys(documents, new MasterKeys(new Dictionary<string, byte[]> { [TestKeys.MasterKeyId] = first, ["second"] = second }, "second"), TimeProvider.System)
            .RotateAsync(_org.Id, CancellationToken.None);

        // The first master key is gone: the keys it wraps (the first data key, the fingerprint key) cannot be opened.
        var withoutFirst = new OrgDataKeys(documents, new MasterKeys(new Dictionary<string, byte[]> { ["second"] = second, ["third"] = third }, "third"), TimeProvider.System);
        var result = await withoutFirst.RewrapAsync(_org.Id, CancellationToken.None);

        result.Rewrapped.ShouldBe(1);
        result.Unopenable.Count.ShouldBe(2);
        result.Unopenable.ShouldNotContain(rotated);
        await using var query = documents.QuerySession(_org.Id);
        var ring = (await query.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId))!;
        ring.Keys.Single(k => k.KeyId == rotated).MasterKeyId.ShouldBe("third");
        ring.Keys.Where(k => k.KeyId != rotated).ShouldAllBe(k => k.MasterKeyId == TestKeys.MasterKeyId);
    }

    [Fact]
    public async Task a_ciphertext_opens_only_at_its_own_org_session_sequence_and_offset()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        var stored = await StoredBatch(session, 0);

        (await Cipher.OpenAsync(new BatchPlace(_org.Id, session, 0, 0), stored, CancellationToken.None)).ShouldNotBeEmpty();
        foreach (var elsewhere in new[]
                 {
                     new BatchPlace(_org.Id, session, 1, 0),
                     new BatchPlace(_org.Id, session, 0, 100),
                     new BatchPlace(_org.Id, Guid.NewGuid(), 0, 0),
                     new BatchPlace(store.NewOrg().Id, session, 0, 0),
                 })
        {
            await Should.ThrowAsync<CryptographicException>(() => Cipher.OpenAsync(elsewhere, stored, CancellationToken.None).AsTask());
        }
    }

    private async Task<BatchUploaded> StoredBatch(Guid sessionId, long sequence)
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        var events = await query.Events.FetchStreamAsync(sessionId);
        return events.Select(e => e.Data).OfType<BatchUploaded>().Single(b => b.Sequence == sequence);
    }

    private async Task<List<string>> KeyIds(Org org, Guid sessionId)
    {
        await using var query = store.Host.DocumentStore().QuerySession(org.Id);
        return (await query.Events.FetchStreamAsync(sessionId)).Select(e => e.Data).OfType<BatchUploaded>().Select(b => b.KeyId).ToList();
    }
}
