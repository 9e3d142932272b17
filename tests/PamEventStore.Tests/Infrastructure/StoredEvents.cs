using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PamEventStore.Crypto;
using PamEventStore.Recording;
using PamEventStore.Sessions;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>Direct access to what the service stored, for seeding long sessions and for tampering.</summary>
public static class StoredEvents
{
    /// <summary>
    /// Appends <paramref name="count"/> one-line batches the way the upload endpoint does (sealed with
    /// the org's key, linked, under the stream lock), hundreds per commit: a 10,000-batch session in seconds.
    /// Batch i starts at offset i * 100 and holds "line i". Unless <paramref name="compressed"/>, its
    /// content is sealed as it is, as versions before compressed recordings stored it.
    /// </summary>
    public static async Task SeedBatchesAsync(PamStoreHost store, Org org, Guid sessionId, int count, int perCommit = 500, bool compressed = true)
    {
        var sealing = await store.Host.Services.GetRequiredService<RecordingCipher>().SealingAsync(org.Id, CancellationToken.None);
        var actor = new Actor("gateway", "gateway:" + Org.Gateway, Org.Gateway, "seed");
        for (var first = 0; first < count; first += perCommit)
        {
            await using var session = store.Host.DocumentStore().LightweightSession(org.Id);
            var stream = await session.Events.FetchForExclusiveWriting<PamSession>(sessionId);
            var sequence = stream.Aggregate!.BatchCount;
            for (var i = first; i < Math.Min(first + perCommit, count); i++, sequence++)
            {
                RecordingParser.TryParseBatch(System.Text.Encoding.UTF8.GetBytes(Recordings.Lines((int)sequence, 1)), out var content, out _).ShouldBeTrue();
                var sealedContent = RecordingCipher.Seal(sealing, new BatchPlace(org.Id, sessionId, sequence, sequence * 100), PackedContent.Pack(content!.Canonical.Span, compressed));
                var fingerprint = sealing.Fingerprint.Of(content.Sha256());
                stream.AppendLinked(sealing.Chain, org.Id, sessionId, [new BatchUploaded(sequence, sequence * 100, sequence * 100 + 100, 0, 1, content.EarliestEventAt, content.LatestEventAt,
                    fingerprint, fingerprint, content.Canonical.Length, sealedContent.KeyId, actor, DateTimeOffset.UtcNow).SealedAs(sealedContent)]);
            }

            await session.SaveChangesAsync();
        }
    }

    /// <summary>
    /// What a thorough database writer does to cut a stream's end: removes the events past
    /// <paramref name="kept"/> and their batch index entries, sets the stream's row back, and writes the
    /// snapshot the events left give.
    /// </summary>
    public static async Task RewindAsync(PamStoreHost store, Org org, Guid sessionId, long kept)
    {
        await ExecuteAsync(store,
            "delete from pam.mt_events where tenant_id = @org and stream_id = @session and version > @kept;" +
            "delete from pam.mt_doc_recordedbatch where tenant_id = @org and (data ->> 'sessionId')::uuid = @session and (data ->> 'streamVersion')::bigint > @kept;" +
            "update pam.mt_streams set version = @kept where tenant_id = @org and id = @session",
            ("org", org.Id), ("session", sessionId), ("kept", kept));
        await SetSnapshotAsync(store, org, sessionId, kept);
    }

    /// <summary>Writes the session's snapshot as its events up to <paramref name="version"/> give it.</summary>
    public static async Task SetSnapshotAsync(PamStoreHost store, Org org, Guid sessionId, long version)
    {
        var documents = store.Host.Services.GetRequiredService<IDocumentStore>();
        await using var query = documents.QuerySession(org.Id);
        PamSession? replayed = null;
        foreach (var e in await query.Events.FetchStreamAsync(sessionId, version: version)) replayed = PamSession.Replay(replayed, e.Data, e.Version);
        await ExecuteAsync(store, "update pam.mt_doc_pamsession set data = @data::jsonb where tenant_id = @org and id = @session",
            ("org", org.Id), ("session", sessionId), ("data", documents.Options.Serializer().ToJson(replayed)));
    }

    public static Task<int> ExecuteAsync(PamStoreHost store, string sql, params (string Name, object Value)[] parameters) =>
        WithCommandAsync(store, sql, parameters, command => command.ExecuteNonQueryAsync());

    public static Task<T> ScalarAsync<T>(PamStoreHost store, string sql, params (string Name, object Value)[] parameters) =>
        WithCommandAsync(store, sql, parameters, async command => (T)(await command.ExecuteScalarAsync())!);

    private static async Task<T> WithCommandAsync<T>(PamStoreHost store, string sql, (string Name, object Value)[] parameters, Func<NpgsqlCommand, Task<T>> run)
    {
        await using var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        return await run(command);
    }

    /// <summary>The mt_events row holding batch <paramref name="sequence"/> of a session.</summary>
    public const string BatchRow =
        "tenant_id = @org and stream_id = @session and type = 'batch_uploaded' and version = " +
        "(select (data ->> 'streamVersion')::bigint from pam.mt_doc_recordedbatch where tenant_id = @org and id = @batchId)";

    public static (string, object)[] BatchRowParameters(Org org, Guid sessionId, long sequence) =>
        [("org", org.Id), ("session", sessionId), ("batchId", RecordedBatch.IdFor(sessionId, sequence))];
}
