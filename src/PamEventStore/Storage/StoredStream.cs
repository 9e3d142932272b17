using Marten;
using Npgsql;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>One event of a session's stream as stored; <see cref="Data"/> is null when its row does not read.</summary>
public sealed record StoredEvent(long Version, string Type, object? Data);

/// <summary>
/// A session's stream read row by row for the integrity check, outside Marten's event reader: a row
/// that does not read (altered data, an unknown type) is reported where it is, instead of failing the
/// whole read, and the snapshot is read with its stream's row.
/// </summary>
public static class StoredStream
{
    private static readonly IReadOnlyDictionary<string, Type> TypesByName = SessionEventNames.All.ToDictionary(x => x.Value, x => x.Key);
    private static readonly EncryptedRecordingSerializer Recordings = new();

    /// <summary>The session's snapshot and the version its stream's row holds (0 when there is no row), read in one round trip.</summary>
    public static async Task<(PamSession? Session, long StreamVersion)> HeadAsync(IQuerySession db, Guid sessionId, CancellationToken ct)
    {
        var options = db.DocumentStore.Options;
        await using var command = new NpgsqlCommand(
            $"select data from {options.DatabaseSchemaName}.mt_doc_pamsession where tenant_id = @tenant and id = @session;" +
            $"select version from {options.Events.DatabaseSchemaName}.mt_streams where tenant_id = @tenant and id = @session")
        {
            Parameters = { new NpgsqlParameter<string>("tenant", db.TenantId), new NpgsqlParameter<Guid>("session", sessionId) },
        };

        await using var reader = await db.ExecuteReaderAsync(command, ct);
        var session = await reader.ReadAsync(ct) ? options.Serializer().FromJson<PamSession>(reader, 0) : null;
        await reader.NextResultAsync(ct);
        var version = await reader.ReadAsync(ct) ? reader.GetInt64(0) : 0;
        return (session, version);
    }

    /// <summary>Up to <paramref name="count"/> events after <paramref name="after"/>, in version order.</summary>
    public static async Task<IReadOnlyList<StoredEvent>> EventsAfterAsync(IQuerySession db, Guid sessionId, long after, int count, CancellationToken ct)
    {
        var options = db.DocumentStore.Options;
        await using var command = new NpgsqlCommand(
            $"select version, type, data, bdata from {options.Events.DatabaseSchemaName}.mt_events " +
            "where tenant_id = @tenant and stream_id = @session and version > @after order by version limit @count")
        {
            Parameters =
            {
                new NpgsqlParameter<string>("tenant", db.TenantId),
                new NpgsqlParameter<Guid>("session", sessionId),
                new NpgsqlParameter<long>("after", after),
                new NpgsqlParameter<int>("count", count),
            },
        };

        var events = new List<StoredEvent>(count);
        await using var reader = await db.ExecuteReaderAsync(command, ct);
        while (await reader.ReadAsync(ct))
        {
            var type = reader.GetString(1);
            object? data = null;
            if (TypesByName.TryGetValue(type, out var clrType))
            {
                try
                {
                    data = !await reader.IsDBNullAsync(3, ct)
                        ? Recordings.Deserialize(clrType, await reader.GetFieldValueAsync<byte[]>(3, ct))
                        : !await reader.IsDBNullAsync(2, ct) ? options.Serializer().FromJson(clrType, reader, 2) : null;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Altered so that it no longer reads as its type: reported as unreadable where it is.
                }
            }

            events.Add(new StoredEvent(reader.GetInt64(0), type, data is IEncryptedRecording { KeyId.Length: 0 } ? null : data));
        }

        return events;
    }
}
