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
/// general event materialisation of a LINQ query or a stream fetch. The rows are read on their own
/// task as fast as PostgreSQL sends them, while the caller opens the ones already read: reading and
/// decrypting overlap, and the connection goes back to the pool as soon as the rows are in, however
/// slowly the client takes the page (BENCHMARKS.md).
/// </summary>
public sealed class StoredPage : IAsyncDisposable
{
    private static readonly EncryptedRecordingSerializer Format = new();

    private readonly NpgsqlCommand _command;
    private readonly DbDataReader _reader;
    private int _released;
    private bool _taken;

    private StoredPage(NpgsqlCommand command, DbDataReader reader, PamSession? session)
    {
        _command = command;
        _reader = reader;
        Session = session;
    }

    /// <summary>The session as this page read it, or null when the caller's org has no such session.</summary>
    public PamSession? Session { get; }

    /// <summary>
    /// A batch index entry's stream version, or null when it is not a whole number (an altered entry): the
    /// page then finds no rows from it, and its batches read as missing instead of failing the query.
    /// </summary>
    private const string StreamVersion =
        "case when b.data ->> 'streamVersion' ~ '^[0-9]{1,18}$' then (b.data ->> 'streamVersion')::bigint end";

    /// <param name="firstBatch">The page's first batch (<see cref="RecordedBatch.IdFor"/>): no such batch, no rows.</param>
    /// <param name="lastBatch">The page's last batch; rows go on to the end of the stream when it is not there.</param>
    /// <param name="limit">At most this many batches.</param>
    public static async Task<StoredPage> ReadAsync(IQuerySession db, Guid sessionId, string firstBatch, string lastBatch, int limit, CancellationToken ct)
    {
        var documents = db.DocumentStore.Options.DatabaseSchemaName;
        var events = db.DocumentStore.Options.Events.DatabaseSchemaName;
        var command = new NpgsqlCommand(
            $"select data from {documents}.mt_doc_pamsession where tenant_id = @tenant and id = @session;" +
            $"select e.bdata from {events}.mt_events e where e.tenant_id = @tenant and e.stream_id = @session and e.type = @type " +
            $"and e.version >= (select {StreamVersion} from {documents}.mt_doc_recordedbatch b where b.tenant_id = @tenant and b.id = @first) " +
            $"and e.version <= coalesce((select {StreamVersion} from {documents}.mt_doc_recordedbatch b where b.tenant_id = @tenant and b.id = @last), {long.MaxValue}) " +
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
            return new StoredPage(command, reader, session);
        }
        catch
        {
            await reader.DisposeAsync();
            await command.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The batch a page was cut short at by its byte bound (the first one not read), once
    /// <see cref="BatchesAsync"/> has been read to its end; null when it was not cut.
    /// </summary>
    public long? CutAt { get; private set; }

    /// <summary>
    /// The page's batches in stream order, read once. Rows come in stream order, which is batch
    /// order: reading stops at the first batch at or past <paramref name="endSequence"/>, or at the
    /// first that would take the page's content over <paramref name="maxBytes"/> (never the first:
    /// one batch always fits), and the rest of the query is cancelled. A row behind the page's next
    /// batch (moved out of its place: the page skips it) counts for nothing, so a page always moves on.
    /// </summary>
    public async IAsyncEnumerable<BatchUploaded> BatchesAsync(long startSequence, long endSequence, long maxBytes, [EnumeratorCancellation] CancellationToken ct)
    {
        if (_taken) throw new InvalidOperationException("A page's batches are read once.");
        _taken = true;

        // Unbounded: the page's rows are few (its limit) and its bytes bounded (maxBytes), and the
        // connection must not wait on the client's download.
        var read = Channel.CreateUnbounded<BatchUploaded>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(async () =>
        {
            var allRead = false;
            long bytes = 0;
            var next = startSequence;
            try
            {
                while (true)
                {
                    if (!await _reader.ReadAsync(stop.Token))
                    {
                        allRead = true;
                        break;
                    }

                    if (await _reader.IsDBNullAsync(0, stop.Token)) continue;
                    var batch = (BatchUploaded)Format.Deserialize(typeof(BatchUploaded), await _reader.GetFieldValueAsync<byte[]>(0, stop.Token));
                    if (batch.Sequence >= endSequence) break;
                    if (batch.Sequence >= next)
                    {
                        // What the batch gives once opened (its content is stored compressed), or what its row holds if more.
                        var batchBytes = Math.Max(batch.Ciphertext.Length, (long)batch.PlaintextBytes);
                        if (bytes > 0 && bytes + batchBytes > maxBytes)
                        {
                            CutAt = batch.Sequence;
                            break;
                        }

                        bytes += batchBytes;
                        next = batch.Sequence + 1;
                    }

                    read.Writer.TryWrite(batch);
                }

                read.Writer.Complete();
            }
            catch (Exception e)
            {
                read.Writer.TryComplete(e);
            }
            finally
            {
                await ReleaseAsync(cancelQuery: !allRead);
            }
        }, CancellationToken.None);

        try
        {
            await foreach (var batch in read.Reader.ReadAllAsync(ct)) yield return batch;
        }
        finally
        {
            // A reader that stops early (the client went away) ends the query before the connection is released.
            await stop.CancelAsync();
            await reading;
        }
    }

    /// <summary>Releases the query and its connection, once; the response disposes an unread page.</summary>
    public ValueTask DisposeAsync() => ReleaseAsync(cancelQuery: true);

    private async ValueTask ReleaseAsync(bool cancelQuery)
    {
        if (Interlocked.Exchange(ref _released, 1) == 1) return;

        // Rows left unread would otherwise all be read to be thrown away when the reader closes.
        if (cancelQuery && _reader.HasRows)
        {
            try
            {
                _command.Cancel();
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                // Already finished or the connection is gone: closing the reader is all that is left.
            }
        }

        try
        {
            await _reader.DisposeAsync();
        }
        catch (Exception e) when (e is NpgsqlException or PostgresException or OperationCanceledException)
        {
            // A cancelled query ends with an error the closing reader reports: the rows were not wanted.
        }

        await _command.DisposeAsync();
    }
}
