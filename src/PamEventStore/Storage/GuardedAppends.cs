using Marten;
using Npgsql;
using NpgsqlTypes;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// What one session appends in a group commit: its events, already linked, decided on its snapshot at
/// <see cref="PamSession.Version"/>, the version its stream must still be at; and what they make of it,
/// as the session's inline projections would.
/// </summary>
public sealed record SessionAppend(PamSession Before, IReadOnlyList<SessionEvent> Events)
{
    /// <summary>The snapshot once the events are applied (<see cref="PamSession.Replay"/>, the aggregate's own apply methods).</summary>
    public PamSession After { get; } = Events.Select((e, i) => (e, i)).Aggregate(Before, (session, x) => PamSession.Replay(session, x.e, Before.Version + x.i + 1)!);

    /// <summary>The batch index entries of the batches stored (<see cref="RecordedBatch.Of"/>, the projection's own code).</summary>
    public IEnumerable<RecordedBatch> IndexEntries =>
        Events.Select((e, i) => (e, i)).Where(x => x.e is BatchUploaded).Select(x => RecordedBatch.Of(Before.Id, (BatchUploaded)x.e, Before.Version + x.i + 1));
}

/// <summary>
/// The stream of a session in a guarded append was no longer at the version its upload was decided at:
/// another writer (a node, an end of session) appended meanwhile. Nothing of the group was written.
/// </summary>
public sealed class StreamMovedException(Exception inner) : Exception("A session's stream moved on after its upload was decided; nothing was written.", inner);

/// <summary>
/// Appends the decided events of a group of sessions in one round trip and one implicit transaction,
/// each decided on its session's snapshot as last committed (read without a lock) instead of under its
/// stream's lock, and guarded by the version it was decided at: if any stream has moved on since, the
/// whole group is rolled back
/// (<see cref="StreamMovedException"/>) and nothing is written. It writes, per session, exactly the rows
/// Marten writes for the same events (a test compares every column): the stream's new version, the event
/// rows (as <c>mt_quick_append_events</c>, the function of Marten's quick append, inserts them), and what
/// its inline projections write, the session's snapshot (<see cref="SessionAppend.After"/>) and a batch
/// index entry per stored batch, serialized by the store's own serializers.
/// </summary>
/// <remarks>
/// Marten's unit of work for the same group takes three round trips (lock and read, append, commit), a
/// PL/pgSQL call per session and its projections run through its session; this is what group commit
/// writes per upload, and nothing else (BENCHMARKS.md). Marten still owns the schema, every other append
/// (a session's start and end, legacy uploads, any upload decided again under its lock) and every read.
/// </remarks>
public static class GuardedAppends
{
    private static readonly EncryptedRecordingSerializer Recordings = new();
    private static readonly string SnapshotType = typeof(PamSession).FullName!;
    private static readonly string IndexEntryType = typeof(RecordedBatch).FullName!;

    /// <summary>What Marten writes in <c>mt_events.data</c> for an event whose payload is in <c>bdata</c>.</summary>
    private const string BinaryEventBody = "{}";

    /// <summary>
    /// An event at a version the stream already has: its stream moved on, by a writer that took the
    /// stream's lock after the guard had let this one through (the guard takes it first; a backstop).
    /// </summary>
    private const string StreamVersionKey = "pk_mt_events_stream_and_version";

    /// <summary>Writes every session's append, or nothing: durable once it returns.</summary>
    public static async Task WriteAsync(IDocumentSession db, IReadOnlyList<SessionAppend> appends, CancellationToken ct)
    {
        var options = (StoreOptions)db.DocumentStore.Options;
        var serializer = options.Serializer();
        var events = options.Events.DatabaseSchemaName;
        var documents = options.DatabaseSchemaName;

        await using var connection = db.Database.CreateConnection();
        await connection.OpenAsync(ct);
        await using var batch = new NpgsqlBatch(connection);

        // A stream held by another writer (a node deciding under its lock, an end of session) makes the
        // append wait for it. Past half the command timeout that is PostgreSQL's lock_not_available, which
        // answers 503 session-locked as Marten's locked fetch does, rather than a timeout read as the
        // database being unavailable.
        if (connection.CommandTimeout > 0)
        {
            batch.BatchCommands.Add(Command("select set_config('lock_timeout', $1, true)", Text($"{connection.CommandTimeout * 500}ms")));
        }

        // Streams in the order the locked path takes them, so that two groups never wait on each other in a circle.
        foreach (var append in appends.OrderBy(a => a.Before.Id))
        {
            var (before, appended) = append;

            // The guard, first: the stream's row is locked (waiting for whoever holds it) and moved to its new
            // version only if it is still at the version the upload was decided at; if it is not, the
            // division by the rows moved fails the group before anything of it is written. An append that
            // wrote its events before it waited for the stream would deadlock with the holder appending to it.
            batch.BatchCommands.Add(Command(
                $"with moved as (update {events}.mt_streams set version = $3, timestamp = now() " +
                "where tenant_id = $1 and id = $2 and version = $4 and is_archived is not true returning 1) " +
                "select 1 / count(*)::int from moved",
                Text(db.TenantId), new NpgsqlParameter<Guid> { TypedValue = before.Id },
                new NpgsqlParameter<long> { TypedValue = append.After.Version }, new NpgsqlParameter<long> { TypedValue = before.Version }));

            for (var i = 0; i < appended.Count; i++)
            {
                var e = appended[i];
                var type = e.GetType();
                var binary = e is IEncryptedRecording;
                batch.BatchCommands.Add(Command(
                    $"insert into {events}.mt_events (seq_id, id, stream_id, version, data, bdata, type, tenant_id, timestamp, mt_dotnet_type, is_archived) " +
                    $"values (nextval('{events}.mt_events_sequence'), $1, $2, $3, $4, $5, $6, $7, (now() at time zone 'utc'), $8, false)",
                    new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() },
                    new NpgsqlParameter<Guid> { TypedValue = before.Id },
                    new NpgsqlParameter<long> { TypedValue = before.Version + i + 1 },
                    Json(binary ? BinaryEventBody : serializer.ToJson(e)),
                    binary ? new NpgsqlParameter<byte[]> { TypedValue = Recordings.Serialize(type, e) } : new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bytea },
                    Text(SessionEventNames.All[type]),
                    Text(db.TenantId),
                    Text(DotNetTypeName(type))));
            }

            batch.BatchCommands.Add(Command(UpsertDocument(documents, "mt_doc_pamsession"),
                Text(db.TenantId), new NpgsqlParameter<Guid> { TypedValue = before.Id }, Json(serializer.ToJson(append.After)),
                new NpgsqlParameter<long> { TypedValue = append.After.Version }, Text(SnapshotType)));

            // An entry the batch's sequence names can only be this batch's (the guard above decided that).
            foreach (var entry in append.IndexEntries)
            {
                batch.BatchCommands.Add(Command(UpsertDocument(documents, "mt_doc_recordedbatch"),
                    Text(db.TenantId), Text(entry.Id), Json(serializer.ToJson(entry)), new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() }, Text(IndexEntryType)));
            }
        }

        try
        {
            await batch.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException moved) when (moved.SqlState is PostgresErrorCodes.DivisionByZero // a guard's: nothing else here divides
                                               || moved is { SqlState: PostgresErrorCodes.UniqueViolation, ConstraintName: StreamVersionKey })
        {
            throw new StreamMovedException(moved);
        }
    }

    /// <summary>
    /// As Marten's own upsert of a projected document, written over if it is there; its parameters are
    /// $1 tenant, $2 id, $3 data, $4 mt_version (the stream's version for a snapshot, a new uuid otherwise), $5 .NET type.
    /// </summary>
    private static string UpsertDocument(string schema, string table) =>
        $"insert into {schema}.{table} (tenant_id, id, data, mt_version, mt_dotnet_type, mt_last_modified) " +
        "values ($1, $2, $3, $4, $5, transaction_timestamp()) on conflict (tenant_id, id) do update set " +
        "data = excluded.data, mt_version = excluded.mt_version, mt_dotnet_type = excluded.mt_dotnet_type, mt_last_modified = excluded.mt_last_modified";

    private static NpgsqlBatchCommand Command(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        return command;
    }

    private static NpgsqlParameter<string> Text(string value) => new() { TypedValue = value };

    private static NpgsqlParameter<string> Json(string value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Jsonb };

    /// <summary>How Marten names an event's type in <c>mt_events.mt_dotnet_type</c>.</summary>
    private static string DotNetTypeName(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";
}
