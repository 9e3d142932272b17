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

        // First the guards, one per stream, in the order the locked path takes them, so that two groups never
        // wait on each other in a circle; and before anything is written.
        var rows = new GroupRows();
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
                rows.Events.Add((Guid.CreateVersion7(), before.Id, before.Version + i + 1, binary ? BinaryEventBody : serializer.ToJson(e),
                    binary ? Recordings.Serialize(type, e) : null, SessionEventNames.All[type], DotNetTypeName(type)));
            }

            rows.Snapshots.Add((before.Id, serializer.ToJson(append.After), append.After.Version));
            foreach (var entry in append.IndexEntries) rows.IndexEntries.Add((entry.Id, serializer.ToJson(entry)));
        }

        // Then every session's rows, a statement for each table: the event rows, in version order within
        // each stream; the snapshots; and the batch index entries, as Marten's own upsert of a projected
        // document, written over if it is there (an entry the batch's sequence names can only be this
        // batch's: the guards above decided that).
        batch.BatchCommands.Add(Command(
            $"insert into {events}.mt_events (seq_id, id, stream_id, version, data, bdata, type, tenant_id, timestamp, mt_dotnet_type, is_archived) " +
            $"select nextval('{events}.mt_events_sequence'), e.id, e.stream_id, e.version, e.data, e.bdata, e.type, $1, (now() at time zone 'utc'), e.dotnet_type, false " +
            "from unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::jsonb[], $6::bytea[], $7::varchar[], $8::varchar[]) with ordinality as e(id, stream_id, version, data, bdata, type, dotnet_type, n) order by e.n",
            Text(db.TenantId),
            new NpgsqlParameter<Guid[]> { TypedValue = rows.Events.Select(e => e.Id).ToArray() },
            new NpgsqlParameter<Guid[]> { TypedValue = rows.Events.Select(e => e.Stream).ToArray() },
            new NpgsqlParameter<long[]> { TypedValue = rows.Events.Select(e => e.Version).ToArray() },
            Texts(rows.Events.Select(e => e.Body), NpgsqlDbType.Jsonb),
            new NpgsqlParameter<byte[]?[]> { TypedValue = rows.Events.Select(e => e.Binary).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea },
            Texts(rows.Events.Select(e => e.Type), NpgsqlDbType.Varchar),
            Texts(rows.Events.Select(e => e.DotNetType), NpgsqlDbType.Varchar)));

        batch.BatchCommands.Add(Command(
            $"insert into {documents}.mt_doc_pamsession (tenant_id, id, data, mt_version, mt_dotnet_type, mt_last_modified) " +
            "select $1, s.id, s.data, s.version, $2, transaction_timestamp() from unnest($3::uuid[], $4::jsonb[], $5::bigint[]) as s(id, data, version) " +
            "on conflict (tenant_id, id) do update set " +
            "data = excluded.data, mt_version = excluded.mt_version, mt_dotnet_type = excluded.mt_dotnet_type, mt_last_modified = excluded.mt_last_modified",
            Text(db.TenantId), Text(SnapshotType),
            new NpgsqlParameter<Guid[]> { TypedValue = rows.Snapshots.Select(x => x.Id).ToArray() },
            Texts(rows.Snapshots.Select(x => x.Data), NpgsqlDbType.Jsonb),
            new NpgsqlParameter<long[]> { TypedValue = rows.Snapshots.Select(x => x.Version).ToArray() }));

        if (rows.IndexEntries.Count > 0)
        {
            batch.BatchCommands.Add(Command(
                $"insert into {documents}.mt_doc_recordedbatch (tenant_id, id, data, mt_version, mt_dotnet_type, mt_last_modified) " +
                "select $1, x.id, x.data, x.version, $2, transaction_timestamp() from unnest($3::varchar[], $4::jsonb[], $5::uuid[]) as x(id, data, version) " +
                "on conflict (tenant_id, id) do update set " +
                "data = excluded.data, mt_version = excluded.mt_version, mt_dotnet_type = excluded.mt_dotnet_type, mt_last_modified = excluded.mt_last_modified",
                Text(db.TenantId), Text(IndexEntryType),
                Texts(rows.IndexEntries.Select(x => x.Id), NpgsqlDbType.Varchar),
                Texts(rows.IndexEntries.Select(x => x.Data), NpgsqlDbType.Jsonb),
                new NpgsqlParameter<Guid[]> { TypedValue = rows.IndexEntries.Select(_ => Guid.CreateVersion7()).ToArray() }));
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

    private static NpgsqlBatchCommand Command(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        return command;
    }

    private static NpgsqlParameter<string> Text(string value) => new() { TypedValue = value };

    private static NpgsqlParameter<string[]> Texts(IEnumerable<string> values, NpgsqlDbType type) => new() { TypedValue = values.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | type };

    /// <summary>What a group writes, table by table, once its guards have passed.</summary>
    private sealed class GroupRows
    {
        public List<(Guid Id, Guid Stream, long Version, string Body, byte[]? Binary, string Type, string DotNetType)> Events { get; } = [];
        public List<(Guid Id, string Data, long Version)> Snapshots { get; } = [];
        public List<(string Id, string Data)> IndexEntries { get; } = [];
    }

    /// <summary>How Marten names an event's type in <c>mt_events.mt_dotnet_type</c>.</summary>
    private static string DotNetTypeName(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";
}
