using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;

namespace PamEventStore.Benchmarks;

/// <summary>
/// The design this service replaces, done the fastest way PostgreSQL allows: Infisical's
/// pam_session_event_batches table, one prepared <c>INSERT ... ON CONFLICT (session_id, start_offset)
/// DO NOTHING</c> per batch of AES-256-GCM ciphertext, straight from Npgsql (no HTTP, no service).
/// </summary>
public sealed class RawBaseline(string connectionString) : IAsyncDisposable
{
    private const string Table = "raw_baseline.pam_session_event_batches";
    private const string InsertSql = $"insert into {Table} (session_id, start_offset, encrypted_events_blob) values ($1, $2, $3) on conflict (session_id, start_offset) do nothing";
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    // Pooled connections with automatic preparation, for inserts that arrive one by one (open loop).
    private readonly NpgsqlDataSource _pool = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString)
    {
        NoResetOnClose = true, MaxAutoPrepare = 16, AutoPrepareMinUsages = 2,
    }.ConnectionString);

    public async Task CreateAsync()
    {
        await using var connection = await OpenAsync();
        await using var create = new NpgsqlCommand($"""
            create schema if not exists raw_baseline;
            create table {Table} (
                id uuid primary key default gen_random_uuid(),
                session_id uuid not null,
                start_offset bigint not null,
                encrypted_events_blob bytea not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                unique (session_id, start_offset));
            create index on {Table} (session_id);
            """, connection);
        await create.ExecuteNonQueryAsync();
    }

    /// <summary>Inserts every batch of the plans, <paramref name="workers"/> connections at once, each taking whole sessions.</summary>
    /// <returns>Elapsed time and how many rows were actually inserted.</returns>
    public async Task<(TimeSpan Elapsed, long Inserted)> InsertAsync(IReadOnlyList<SessionPlan> plans, int workers)
    {
        var byWorker = Enumerable.Range(0, workers).Select(w => plans.Where((_, i) => i % workers == w).ToList()).ToList();
        var clock = Stopwatch.StartNew();
        var counts = await Task.WhenAll(byWorker.Select(async mine =>
        {
            await using var connection = await OpenAsync();
            await using var insert = new NpgsqlCommand(InsertSql, connection);
            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Uuid });
            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bigint });
            insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bytea });
            await insert.PrepareAsync();

            long inserted = 0;
            foreach (var (plan, batch) in Interleave(mine))
            {
                insert.Parameters[0].Value = plan.SessionId;
                insert.Parameters[1].Value = batch.StartOffset;
                insert.Parameters[2].Value = Seal(batch.Body);
                inserted += await insert.ExecuteNonQueryAsync();
            }

            return inserted;
        }));

        return (clock.Elapsed, counts.Sum());
    }

    /// <summary>One batch, on a pooled connection: what a request of the replaced design costs the database.</summary>
    public async Task InsertOneAsync(Guid sessionId, long startOffset, byte[] body)
    {
        await using var insert = _pool.CreateCommand(InsertSql);
        insert.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = sessionId });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = startOffset });
        insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = Seal(body) });
        await insert.ExecuteNonQueryAsync();
    }

    public ValueTask DisposeAsync() => _pool.DisposeAsync();

    /// <summary>
    /// The same page the service serves: 100 rows of a session from an offset, by index, decrypted. A
    /// prepared statement (prepared once per connection: Npgsql keeps it), as the service's are.
    /// </summary>
    public async Task<(int Rows, int Bytes)> ReadPageAsync(NpgsqlConnection connection, Guid sessionId, long fromOffset, int limit)
    {
        await using var select = new NpgsqlCommand(
            $"select encrypted_events_blob from {Table} where session_id = $1 and start_offset >= $2 order by start_offset limit $3", connection);
        select.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = sessionId });
        select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromOffset });
        select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        await select.PrepareAsync();
        await using var reader = await select.ExecuteReaderAsync();
        var (rows, bytes) = (0, 0);
        while (await reader.ReadAsync())
        {
            rows++;
            bytes += Open((byte[])reader[0]).Length;
        }

        return (rows, bytes);
    }

    public async Task<long> SizeOnDiskAsync()
    {
        await using var connection = await OpenAsync();
        await using var size = new NpgsqlCommand($"vacuum analyze {Table}; select pg_total_relation_size('{Table}')", connection);
        return (long)(await size.ExecuteScalarAsync())!;
    }

    public async Task<NpgsqlConnection> OpenAsync()
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>Round-robin over the sessions, each session's batches in offset order, as gateways send them.</summary>
    public static IEnumerable<(SessionPlan Plan, Gateway.Recording.PendingBatch Batch)> Interleave(IReadOnlyList<SessionPlan> plans)
    {
        var longest = plans.Count == 0 ? 0 : plans.Max(p => p.Batches.Count);
        for (var i = 0; i < longest; i++)
        {
            foreach (var plan in plans)
            {
                if (i < plan.Batches.Count) yield return (plan, plan.Batches[i]);
            }
        }
    }

    private byte[] Seal(byte[] plaintext)
    {
        var sealedBytes = new byte[12 + plaintext.Length + 16];
        RandomNumberGenerator.Fill(sealedBytes.AsSpan(0, 12));
        using var aes = new AesGcm(_key, 16);
        aes.Encrypt(sealedBytes.AsSpan(0, 12), plaintext, sealedBytes.AsSpan(12, plaintext.Length), sealedBytes.AsSpan(12 + plaintext.Length));
        return sealedBytes;
    }

    private byte[] Open(byte[] sealedBytes)
    {
        var plaintext = new byte[sealedBytes.Length - 28];
        using var aes = new AesGcm(_key, 16);
        aes.Decrypt(sealedBytes.AsSpan(0, 12), sealedBytes.AsSpan(12, plaintext.Length), sealedBytes.AsSpan(^16), plaintext);
        return plaintext;
    }
}
