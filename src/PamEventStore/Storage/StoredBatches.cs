using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Marten;
using Npgsql;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// Reads a range of a session's <see cref="BatchUploaded"/> events straight from their rows, in stream
/// order, for a log page. Only each batch's stored bytes are selected, by the stream's
/// (tenant, stream, version) key, without the general event materialisation of a LINQ query or a
/// stream fetch; and the rows are read ahead on their own task while the caller opens the batches
/// already read, so reading and decrypting overlap (BENCHMARKS.md).
/// </summary>
public static class StoredBatches
{
    /// <summary>Batches read ahead of the one being opened: a few, so a page holds little in memory.</summary>
    private const int ReadAhead = 8;

    private static readonly EncryptedRecordingSerializer Format = new();

    /// <summary>The batches between two stream versions (inclusive) of the session's stream, in the session's tenant.</summary>
    public static async IAsyncEnumerable<BatchUploaded> ReadAsync(
        IQuerySession db, Guid sessionId, long fromVersion, long untilVersion, [EnumeratorCancellation] CancellationToken ct)
    {
        var read = Channel.CreateBounded<BatchUploaded>(new BoundedChannelOptions(ReadAhead) { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var batch in ReadRowsAsync(db, sessionId, fromVersion, untilVersion, stop.Token)) await read.Writer.WriteAsync(batch, stop.Token);
                read.Writer.Complete();
            }
            catch (Exception e)
            {
                read.Writer.TryComplete(e);
            }
        }, CancellationToken.None);

        try
        {
            await foreach (var batch in read.Reader.ReadAllAsync(ct)) yield return batch;
        }
        finally
        {
            // A reader that stops early (the client went away) ends the query before the session is released.
            await stop.CancelAsync();
            await reading;
        }
    }

    private static async IAsyncEnumerable<BatchUploaded> ReadRowsAsync(
        IQuerySession db, Guid sessionId, long fromVersion, long untilVersion, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"select bdata from {db.DocumentStore.Options.Events.DatabaseSchemaName}.mt_events " +
            "where tenant_id = $1 and stream_id = $2 and version >= $3 and version <= $4 and type = $5 order by version")
        {
            Parameters =
            {
                new NpgsqlParameter<string> { TypedValue = db.TenantId },
                new NpgsqlParameter<Guid> { TypedValue = sessionId },
                new NpgsqlParameter<long> { TypedValue = fromVersion },
                new NpgsqlParameter<long> { TypedValue = untilVersion },
                new NpgsqlParameter<string> { TypedValue = MartenSetup.BatchUploadedType },
            },
        };

        await using var reader = await db.ExecuteReaderAsync(command, ct);
        while (await reader.ReadAsync(ct))
        {
            if (await reader.IsDBNullAsync(0, ct)) continue;
            yield return (BatchUploaded)Format.Deserialize(typeof(BatchUploaded), await reader.GetFieldValueAsync<byte[]>(0, ct));
        }
    }
}
