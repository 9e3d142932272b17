using System.Data;
using Marten;
using Npgsql;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>One event of a session's stream as stored; <see cref="Data"/> is null when its row does not read.</summary>
public sealed record StoredEvent(long Version, string Type, object? Data);

/// <summary>
/// What is stored of a session besides its events: the snapshot (null when there is none or it does not
/// read), the version its stream's row holds, and the project of its first event (null when there is none).
/// </summary>
public sealed record StoredHead(PamSession? Snapshot, bool HasSnapshotRow, long StreamVersion, string? StartedProject)
{
    /// <summary>Anything at all is stored of this session in the org.</summary>
    public bool Exists => HasSnapshotRow || StreamVersion > 0 || StartedProject is not null;
}

/// <summary>
/// A session's stream read for the integrity check, outside Marten's event reader and inside one
/// read-only snapshot of the database: a row that does not read (altered data, an unknown type) is
/// reported where it is instead of failing the whole read, and commits landing while it reads (a live
/// session) are not seen at all, so the snapshot, the stream's row and the events always agree unless
/// someone changed them.
/// </summary>
public sealed class StoredStream : IAsyncDisposable
{
    private static readonly IReadOnlyDictionary<string, Type> TypesByName = SessionEventNames.All.ToDictionary(x => x.Value, x => x.Key);
    private static readonly EncryptedRecordingSerializer Recordings = new();

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly StoreOptions _options;
    private readonly string _tenant;
    private readonly Guid _sessionId;

    private StoredStream(NpgsqlConnection connection, NpgsqlTransaction transaction, StoreOptions options, string tenant, Guid sessionId) =>
        (_connection, _transaction, _options, _tenant, _sessionId) = (connection, transaction, options, tenant, sessionId);

    /// <summary>Opens a connection of its own with a repeatable-read, read-only transaction: every read after sees the same state.</summary>
    public static async Task<StoredStream> OpenAsync(IQuerySession db, Guid sessionId, CancellationToken ct)
    {
        var connection = db.Database.CreateConnection();
        try
        {
            await connection.OpenAsync(ct);
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
            await using (var readOnly = new NpgsqlCommand("set transaction read only", connection, transaction)) await readOnly.ExecuteNonQueryAsync(ct);
            return new StoredStream(connection, transaction, (StoreOptions)db.DocumentStore.Options, db.TenantId, sessionId);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<StoredHead> HeadAsync(CancellationToken ct)
    {
        await using var command = Command(
            $"select data::text from {_options.DatabaseSchemaName}.mt_doc_pamsession where tenant_id = @tenant and id = @session;" +
            $"select coalesce(version, 0) from {_options.Events.DatabaseSchemaName}.mt_streams where tenant_id = @tenant and id = @session;" +
            $"select data ->> 'projectId' from {_options.Events.DatabaseSchemaName}.mt_events " +
            "where tenant_id = @tenant and stream_id = @session and version = 1 and type = @started");
        command.Parameters.Add(new NpgsqlParameter<string>("started", SessionEventNames.All[typeof(SessionStarted)]));

        await using var reader = await command.ExecuteReaderAsync(ct);
        var hasSnapshotRow = await reader.ReadAsync(ct);
        var text = hasSnapshotRow && !await reader.IsDBNullAsync(0, ct) ? reader.GetString(0) : null;
        await reader.NextResultAsync(ct);
        var streamVersion = await reader.ReadAsync(ct) ? reader.GetInt64(0) : 0;
        await reader.NextResultAsync(ct);
        var startedProject = await reader.ReadAsync(ct) && !await reader.IsDBNullAsync(0, ct) ? reader.GetString(0) : null;

        return new StoredHead(Read<PamSession>(text), hasSnapshotRow, streamVersion, startedProject);
    }

    /// <summary>Up to <paramref name="count"/> events after <paramref name="after"/>, in version order.</summary>
    public async Task<IReadOnlyList<StoredEvent>> EventsAfterAsync(long after, int count, CancellationToken ct)
    {
        await using var command = Command(
            $"select version, type, data, bdata from {_options.Events.DatabaseSchemaName}.mt_events " +
            "where tenant_id = @tenant and stream_id = @session and version > @after order by version limit @count");
        command.Parameters.Add(new NpgsqlParameter<long>("after", after));
        command.Parameters.Add(new NpgsqlParameter<int>("count", count));

        var events = new List<StoredEvent>(count);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var type = reader.GetString(1);
            events.Add(new StoredEvent(reader.GetInt64(0), type, TypesByName.TryGetValue(type, out var clrType) ? await ReadAsync(reader, clrType, ct) : null));
        }

        return events;
    }

    /// <summary>The batch index entries of these ids; an entry that does not read is null, one that is not there absent.</summary>
    public async Task<IReadOnlyDictionary<string, RecordedBatch?>> IndexEntriesAsync(IReadOnlyCollection<string> ids, CancellationToken ct)
    {
        var entries = new Dictionary<string, RecordedBatch?>(StringComparer.Ordinal);
        if (ids.Count == 0) return entries;

        await using var command = Command($"select id, data::text from {_options.DatabaseSchemaName}.mt_doc_recordedbatch where tenant_id = @tenant and id = any(@ids)");
        command.Parameters.Add(new NpgsqlParameter<string[]>("ids", ids.ToArray()));
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) entries[reader.GetString(0)] = Read<RecordedBatch>(reader.GetString(1));
        return entries;
    }

    /// <summary>The ids of every batch index entry that names this session (found as re-uploads find them: by the session).</summary>
    public async Task<IReadOnlyList<string>> IndexIdsAsync(CancellationToken ct)
    {
        await using var command = Command(
            $"select id from {_options.DatabaseSchemaName}.mt_doc_recordedbatch where tenant_id = @tenant and (data ->> 'sessionId')::uuid = @session");
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) ids.Add(reader.GetString(0));
        return ids;
    }

    /// <summary>An event of a type that carries ciphertext reads only from <c>bdata</c>, every other only from <c>data</c>.</summary>
    private async Task<object?> ReadAsync(NpgsqlDataReader reader, Type type, CancellationToken ct)
    {
        try
        {
            if (typeof(IEncryptedRecording).IsAssignableFrom(type))
            {
                if (await reader.IsDBNullAsync(3, ct)) return null;
                var recording = Recordings.Deserialize(type, await reader.GetFieldValueAsync<byte[]>(3, ct));
                return recording.GetType() == type && recording is IEncryptedRecording { KeyId.Length: > 0 } ? recording : null;
            }

            return await reader.IsDBNullAsync(2, ct) ? null : _options.Serializer().FromJson(type, reader, 2);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null; // altered so that it no longer reads as its type: reported as unreadable where it is
        }
    }

    /// <summary>A document as its JSON reads, or null when it does not.</summary>
    private T? Read<T>(string? text) where T : class
    {
        if (text is null || !text.TrimStart().StartsWith('{')) return null;
        try
        {
            return _options.Serializer().FromJson<T>(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null;
        }
    }

    private NpgsqlCommand Command(string sql) => new(sql, _connection, _transaction)
    {
        Parameters = { new NpgsqlParameter<string>("tenant", _tenant), new NpgsqlParameter<Guid>("session", _sessionId) },
    };

    public async ValueTask DisposeAsync()
    {
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
