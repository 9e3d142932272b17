using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Shouldly;
using Xunit.Abstractions;
using static PamEventStore.LocalPostgres.Tests.TestSupport;

namespace PamEventStore.LocalPostgres.Tests;

// Separate classes so xunit runs them in parallel: each cluster costs about a second of initdb.
public class PersistentClusterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task a_persistent_cluster_keeps_its_data_and_port_across_restarts()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };

        int firstPort;
        await using (var first = await PostgresCluster.StartAsync(options))
        {
            firstPort = first.Port;
            await ExecuteAsync(first.ConnectionString, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)");
        }
        File.Exists(scratch.PostmasterPid).ShouldBeFalse();

        await using var second = await PostgresCluster.StartAsync(options);

        second.StartedByUs.ShouldBeTrue();
        second.Port.ShouldBe(firstPort);
        (await ScalarAsync<int>(second.ConnectionString, "SELECT id FROM kept")).ShouldBe(7);
    }

    [Fact]
    public async Task an_already_running_cluster_is_reused_and_left_running_when_that_handle_is_disposed()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions
        {
            Directory = scratch.Path,
            Durable = false,
            Settings = new Dictionary<string, string> { ["max_connections"] = "33" },
            Log = output.WriteLine,
        };
        await using var owner = await PostgresCluster.StartAsync(options);

        var reused = await PostgresCluster.StartAsync(options with { Database = "second" });
        reused.StartedByUs.ShouldBeFalse();
        reused.Port.ShouldBe(owner.Port);
        reused.EffectiveSettings["max_connections"].ShouldBe("33");
        reused.EffectiveSettings["fsync"].ShouldBe("off");
        (await ScalarAsync<string>(reused.ConnectionString, "SELECT current_database()")).ShouldBe("second");
        await reused.DisposeAsync();

        (await ScalarAsync<int>(owner.ConnectionString, "SELECT 1")).ShouldBe(1);
        Directory.Exists(scratch.Path).ShouldBeTrue();
    }

    [Fact]
    public async Task a_recorded_port_taken_by_another_process_is_replaced_by_a_free_one()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        int recorded;
        await using (var first = await PostgresCluster.StartAsync(options)) recorded = first.Port;

        var squatter = new TcpListener(IPAddress.Loopback, recorded);
        squatter.Start();
        try
        {
            await using var second = await PostgresCluster.StartAsync(options);

            second.Port.ShouldNotBe(recorded);
            (await File.ReadAllTextAsync(Path.Combine(scratch.Path, "port"))).Trim().ShouldBe(second.Port.ToString());
            (await ScalarAsync<int>(second.ConnectionString, "SELECT 1")).ShouldBe(1);
        }
        finally
        {
            squatter.Stop();
        }
    }

    [Fact]
    public async Task a_killed_server_leaves_a_stale_pid_file_that_does_not_prevent_a_restart()
    {
        using var scratch = new ScratchDirectory();
        // Durable: with synchronous_commit=off even a plain process kill loses the last commits.
        var options = new PostgresClusterOptions { Directory = scratch.Path, Log = output.WriteLine };
        // Disposed last: the restarted server is left running while another handle uses it, and stopped by the last.
        await using var first = await PostgresCluster.StartAsync(options);
        await ExecuteAsync(first.ConnectionString, "CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (1)");

        var postmasterPid = int.Parse((await File.ReadAllLinesAsync(scratch.PostmasterPid))[0]);
        using (var postmaster = Process.GetProcessById(postmasterPid))
        {
            postmaster.Kill();
            await postmaster.WaitForExitAsync();
        }
        File.Exists(scratch.PostmasterPid).ShouldBeTrue();

        await using var second = await PostgresCluster.StartAsync(options);

        second.StartedByUs.ShouldBeTrue();
        (await ScalarAsync<int>(second.ConnectionString, "SELECT id FROM survivor")).ShouldBe(1);
    }

    [Fact]
    public async Task a_server_is_stopped_by_the_last_handle_using_it_whichever_started_it()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        var starter = await PostgresCluster.StartAsync(options);
        var reuser = await PostgresCluster.StartAsync(options with { Database = "second" });
        reuser.StartedByUs.ShouldBeFalse();

        await starter.DisposeAsync();

        (await ScalarAsync<int>(reuser.ConnectionString, "SELECT 1")).ShouldBe(1);
        await reuser.DisposeAsync();
        File.Exists(scratch.PostmasterPid).ShouldBeFalse();
    }

    [Fact]
    public async Task a_server_whose_starter_was_killed_is_stopped_by_the_process_that_reused_it()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        // Never disposed: it stands for a service killed with its server running. Its entry is made to
        // name a process that is gone, as a killed one's does.
        _ = await PostgresCluster.StartAsync(options);
        var entry = Directory.GetFiles(Path.Combine(scratch.Path, "users")).ShouldHaveSingleItem();
        using (var gone = Process.Start("true"))
        {
            await gone.WaitForExitAsync();
            File.Move(entry, Path.Combine(scratch.Path, "users", $"{gone.Id}-{Guid.NewGuid():N}"));
        }

        var reuser = await PostgresCluster.StartAsync(options);
        reuser.StartedByUs.ShouldBeFalse();
        await reuser.DisposeAsync();

        File.Exists(scratch.PostmasterPid).ShouldBeFalse();
        Directory.GetFiles(Path.Combine(scratch.Path, "users")).ShouldBeEmpty();
    }

    [Fact]
    public async Task an_entry_whose_pid_now_names_another_process_is_passed_over()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        // Never disposed: its entry is made to name this process with another start time, as a killed
        // run's does once its PID has been given to a new process.
        _ = await PostgresCluster.StartAsync(options);
        var entry = Directory.GetFiles(Path.Combine(scratch.Path, "users")).ShouldHaveSingleItem();
        Path.GetFileName(entry).ShouldStartWith($"{Environment.ProcessId}-");
        await File.WriteAllTextAsync(entry, "1");

        var reuser = await PostgresCluster.StartAsync(options);
        await reuser.DisposeAsync();

        File.Exists(scratch.PostmasterPid).ShouldBeFalse();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    [InlineData(100)]
    public async Task a_handle_started_while_the_last_one_leaves_keeps_a_working_server(int delayMs)
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        var leaving = await PostgresCluster.StartAsync(options);

        var left = leaving.DisposeAsync().AsTask();
        await Task.Delay(delayMs);
        await using var arriving = await PostgresCluster.StartAsync(options);
        await left;

        (await ScalarAsync<int>(arriving.ConnectionString, "SELECT 1")).ShouldBe(1);
    }

    [Fact]
    public async Task a_pid_file_naming_the_postmaster_of_another_cluster_does_not_block_a_start()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        await using (await PostgresCluster.StartAsync(options)) { }
        await using var other = await PostgresCluster.StartAsync(Throwaway(output));
        var otherPid = File.ReadLines(Path.Combine(other.Directory, "data", "postmaster.pid")).First();

        // After a reboot the PID recorded in a kept cluster's lock file can be another cluster's postmaster:
        // a live postgres process, so only its own data directory tells them apart.
        await File.WriteAllTextAsync(scratch.PostmasterPid, $"{otherPid}\n{Path.Combine(scratch.Path, "data")}\n1700000000\n1\n\n\n\n");

        await using var cluster = await PostgresCluster.StartAsync(options);

        cluster.StartedByUs.ShouldBeTrue();
        cluster.Port.ShouldNotBe(other.Port);
        File.ReadLines(scratch.PostmasterPid).First().ShouldNotBe(otherPid);
        (await ScalarAsync<string>(cluster.ConnectionString, "SHOW data_directory")).ShouldBe(Path.Combine(scratch.Path, "data"));
        (await ScalarAsync<int>(other.ConnectionString, "SELECT 1")).ShouldBe(1);
    }

    [Fact]
    public async Task a_pid_file_naming_an_unrelated_live_process_does_not_block_a_start()
    {
        using var scratch = new ScratchDirectory();
        var options = new PostgresClusterOptions { Directory = scratch.Path, Durable = false, Log = output.WriteLine };
        await using (await PostgresCluster.StartAsync(options)) { }

        // What a container restart leaves behind when the old PID now belongs to someone else: here, this test process.
        await File.WriteAllTextAsync(scratch.PostmasterPid, $"{Environment.ProcessId}\n{Path.Combine(scratch.Path, "data")}\n0\n1\n\n\n\n");

        await using var cluster = await PostgresCluster.StartAsync(options);

        cluster.StartedByUs.ShouldBeTrue();
        (await ScalarAsync<int>(cluster.ConnectionString, "SELECT 1")).ShouldBe(1);
    }
}
