using Npgsql;
using Shouldly;
using Xunit.Abstractions;
using static PamEventStore.LocalPostgres.Tests.TestSupport;

namespace PamEventStore.LocalPostgres.Tests;

public class ThrowawayClusterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task a_throwaway_cluster_accepts_connections_on_loopback_and_reports_its_version()
    {
        await using var cluster = await PostgresCluster.StartAsync(Throwaway(output) with { Durable = true });

        cluster.StartedByUs.ShouldBeTrue();
        cluster.ConnectionString.ShouldBe($"Host=127.0.0.1;Port={cluster.Port};Database=pamstore;Username=postgres");
        cluster.Directory.ShouldStartWith(Path.GetTempPath());
        File.Exists(Path.Combine(cluster.BinDirectory, "initdb")).ShouldBeTrue();
        int.Parse(cluster.ServerVersion.Split('.')[0]).ShouldBeGreaterThanOrEqualTo(15);
        (await ScalarAsync<string>(cluster.ConnectionString, "SELECT current_database()")).ShouldBe("pamstore");
        (await ScalarAsync<string>(cluster.ConnectionString, "SHOW server_version")).ShouldStartWith(cluster.ServerVersion);
        (await ScalarAsync<string>(cluster.ConnectionString, "SHOW fsync")).ShouldBe("on");
        cluster.EffectiveSettings["listen_addresses"].ShouldBe("127.0.0.1");
        cluster.EffectiveSettings.ShouldNotContainKey("fsync");
    }

    [Fact]
    public async Task a_throwaway_cluster_is_stopped_and_removed_on_dispose()
    {
        var cluster = await PostgresCluster.StartAsync(Throwaway(output));
        (await ScalarAsync<int>(cluster.ConnectionString, "SELECT 1")).ShouldBe(1);

        await cluster.DisposeAsync();

        Directory.Exists(cluster.Directory).ShouldBeFalse();
        await Should.ThrowAsync<NpgsqlException>(() => OpenAsync(cluster.ConnectionString));
    }

    [Fact]
    public async Task a_non_durable_cluster_runs_without_fsync_and_applies_extra_settings()
    {
        var options = Throwaway(output) with
        {
            Database = "bench db",
            Settings = new Dictionary<string, string> { ["max_connections"] = "42", ["shared_preload_libraries"] = "pg_stat_statements" },
        };
        await using var cluster = await PostgresCluster.StartAsync(options);

        foreach (var setting in new[] { "fsync", "synchronous_commit", "full_page_writes" })
        {
            (await ScalarAsync<string>(cluster.ConnectionString, $"SHOW {setting}")).ShouldBe("off");
            cluster.EffectiveSettings[setting].ShouldBe("off");
        }
        (await ScalarAsync<string>(cluster.ConnectionString, "SHOW max_connections")).ShouldBe("42");
        (await ScalarAsync<string>(cluster.ConnectionString, "SHOW shared_preload_libraries")).ShouldBe("pg_stat_statements");
        (await ScalarAsync<string>(cluster.ConnectionString, "SELECT current_database()")).ShouldBe("bench db");
        cluster.EffectiveSettings["max_connections"].ShouldBe("42");
    }

    [Fact]
    public async Task two_throwaway_clusters_can_start_at_the_same_time()
    {
        var clusters = await Task.WhenAll(
            PostgresCluster.StartAsync(Throwaway(output)),
            PostgresCluster.StartAsync(Throwaway(output)));
        try
        {
            clusters[0].Port.ShouldNotBe(clusters[1].Port);
            foreach (var cluster in clusters) (await ScalarAsync<int>(cluster.ConnectionString, "SELECT 1")).ShouldBe(1);
        }
        finally
        {
            foreach (var cluster in clusters) await cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task stop_is_idempotent_and_dispose_after_stop_does_not_throw()
    {
        var cluster = await PostgresCluster.StartAsync(Throwaway(output));

        await cluster.StopAsync();
        await cluster.StopAsync();
        await Should.ThrowAsync<NpgsqlException>(() => OpenAsync(cluster.ConnectionString));
        await cluster.DisposeAsync();
        await cluster.DisposeAsync();

        Directory.Exists(cluster.Directory).ShouldBeFalse();
    }
}
