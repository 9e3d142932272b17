using PamEventStore.LocalPostgres;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>
/// The PostgreSQL the tests run against: <c>PAMSTORE_TEST_DB</c> (a connection string) when set,
/// otherwise a throwaway cluster started from the machine's binaries by the same code the service
/// uses, deleted when the tests finish.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly PostgresCluster? _cluster;

    private TestDatabase(string connectionString, PostgresCluster? cluster)
    {
        ConnectionString = connectionString;
        _cluster = cluster;
    }

    public string ConnectionString { get; }

    public static async Task<TestDatabase> StartAsync()
    {
        if (Environment.GetEnvironmentVariable("PAMSTORE_TEST_DB") is { Length: > 0 } configured) return new TestDatabase(configured, null);

        // fsync off: a crash loses nothing a test needs, and every test writes.
        var cluster = await PostgresCluster.StartAsync(PostgresClusterOptions.InTempDirectory("pamstore-test") with
        {
            Durable = false,
            Settings = new Dictionary<string, string> { ["max_connections"] = "200" },
        });
        return new TestDatabase(cluster.ConnectionString, cluster);
    }

    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}
