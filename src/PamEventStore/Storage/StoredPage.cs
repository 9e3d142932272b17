using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Marten;
using Npgsql;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// Reads a log page in one round trip: the session's snapshot, then the rows of its batches from the
/// first to the last batch of the page, found by their index documents inside the same query. Only
/// each batch's stored bytes are selected, by the stream's (tenant, stream, version) key, without the
/// general event materialisation of a LINQ query or a stream fetch; and the rows are read ahead on
/// their own task while the caller opens the ones already read, so reading and decrypting overlap
/// (BENCHMARKS.md).
/// </summary>
public sealed class StoredPage : IAsyncDisposable
{
    /// <summary>Batches read ahead of the one being opened: a few, so a page holds little in memory.</summary>
    private const int ReadAhead = 8;

    private static readonly EncryptedRecordingSerializer Format = new();

    private readonly DbDataReader _reader;
    private bool _taken;

    private StoredPage(DbDataReader reader, PamSession? session)
    {
        _reader = reader;
        Session = session;
    }

    /// <summary>The session as this page read it, or null when the caller's org has no such session.</summary>
    public PamSession? Session { get; }

    /// <param name="firstBatch">The page's first batch (<see cref="RecordedBatch.IdFor"/>): no such batch, no rows.</param>
    /// <param name="lastBatch">The page's last batch; rows go on to the end of the stream when it is not there.</param>
    /// <param name="limit">At most this many batches.</param>
    public static async Task<StoredPage> ReadAsync(IQuerySession db, Guid sessionId, string firstBatch, string lastBatch, int limit, CancellationToken ct)
    {
        var schema = db.DocumentStore.Options.Events.DatabaseSchemaName;
        var command = new NpgsqlCommand(
            $"select data from {schema}.mt_doc_pamsession where tenant_id = @tenant and id = @session;" +
            $"select e.bdata from {schema}.mt_events e where e.tenant_id = @tenant and e.stream_id = @session and e.type = @type " +
            $"and e.version >= (select (b.data ->> 'streamVersion')::bigint from {schema}.mt_doc_recordedbatch b where b.tenant_id = @tenant and b.id = @first) " +
            $"and e.version <= coalesce((select (b.data ->> 'streamVersion')::bigint from {schema}.mt_doc_recordedbatch b where b.tenant_id = @tenant and b.id = @last), {long.MaxValue}) " +
            "order by e.version limit @limit")
        {
            Parameters =
            {
                new NpgsqlParameter<string>("tenant", db.TenantId),
                new NpgsqlParameter<Guid>("session", sessionId),
                new NpgsqlParameter<string>("type", MartenSetup.BatchUploadedType),
                new NpgsqlParameter<string>("first", firstBatch),
                new NpgsqlParameter<string>("last", lastBatch),
                new NpgsqlParameter<int>("limit", limit),
            },
        };

        var reader = await db.ExecuteReaderAsync(command, ct);
        try
        {
            var session = await reader.ReadAsync(ct) ? db.DocumentStore.Options.Serializer().FromJson<PamSession>(reader, 0) : null;
            await reader.NextResultAsync(ct);
            return new StoredPage(reader, session);
        }
        catch
        {
            await reader.DisposeAsync();
            throw;
        }
    }

    /// <summary>The page's batches in stream order, read once.</summary>
    public async IAsyncEnumerable<BatchUploaded> BatchesAsync([EnumeratorCancellation] CancellationToken ct)
    {
        if (_taken) throw new InvalidOperationException("A page's batches are read once.");
        _taken = true;

        var read = Channel.CreateBounded<BatchUploaded>(new BoundedChannelOptions(ReadAhead) { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(async () =>
        {
            try
            {
                while (await _reader.ReadAsync(stop.Token))
                {
                    if (await _reader.IsDBNullAsync(0, stop.Token)) continue;
                    var batch = (BatchUploaded)Format.Deserialize(typeof(BatchUploaded), await _reader.GetFieldValueAsync<byte[]>(0, stop.Token));
                    await read.Writer.WriteAsync(batch, stop.Token);
                }

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
            // A reader that stops early (the client went away, the page is full) ends the query
            // before the connection is released.
            await stop.CancelAsync();
            await reading;
            await _reader.DisposeAsync();
        }
    }

    /// <summary>Releases the query when the batches were not read (the page turned out empty, or not found).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_taken) await _reader.DisposeAsync();
    }
}
