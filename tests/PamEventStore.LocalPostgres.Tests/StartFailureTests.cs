using System.Net;
using System.Net.Sockets;
using Shouldly;
using Xunit.Abstractions;
using static PamEventStore.LocalPostgres.Tests.TestSupport;

namespace PamEventStore.LocalPostgres.Tests;

public class StartFailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task an_explicit_port_in_use_fails_with_the_command_exit_code_and_server_log()
    {
        var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        try
        {
            var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
            var options = Throwaway(output) with { Port = port };

            var error = await Should.ThrowAsync<InvalidOperationException>(() => PostgresCluster.StartAsync(options));
            output.WriteLine(error.Message);

            error.Message.ShouldContain("pg_ctl");
            error.Message.ShouldContain("exit code 1");
            error.Message.ShouldContain("Address already in use");
            Directory.Exists(options.Directory).ShouldBeFalse();
        }
        finally
        {
            squatter.Stop();
        }
    }

    [Theory]
    [InlineData("price$HOME")]
    [InlineData("a`id`b")]
    [InlineData("say\"hi\"")]
    [InlineData("back\\slash")]
    [InlineData("new\nline")]
    public async Task a_directory_pg_ctl_cannot_pass_to_its_shell_is_refused_before_anything_is_created(string name)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"pamstore-lp-test-{Guid.NewGuid():N}", name);

        var error = await Should.ThrowAsync<PostgresDirectoryUnusableException>(() =>
            PostgresCluster.StartAsync(new PostgresClusterOptions { Directory = directory, Durable = false, Log = output.WriteLine }));
        output.WriteLine(error.Message);

        error.Message.ShouldContain("pg_ctl cannot pass to the shell");
        Directory.Exists(Path.GetDirectoryName(directory)).ShouldBeFalse();
    }

    [Fact]
    public async Task a_data_directory_from_another_major_version_is_refused_with_an_explanation()
    {
        using var scratch = new ScratchDirectory();
        Directory.CreateDirectory(Path.Combine(scratch.Path, "data"));
        await File.WriteAllTextAsync(Path.Combine(scratch.Path, "data", "PG_VERSION"), "9\n");

        var error = await Should.ThrowAsync<InvalidOperationException>(() =>
            PostgresCluster.StartAsync(new PostgresClusterOptions { Directory = scratch.Path, Log = output.WriteLine }));

        error.Message.ShouldContain("initialised by PostgreSQL 9");
        error.Message.ShouldContain($"Delete {scratch.Path}");
    }

    [Fact]
    public async Task as_root_a_directory_the_postgres_user_cannot_reach_is_refused_with_an_explanation()
    {
        // Only root hands the server to the postgres user; otherwise there is no second user to be locked out.
        if (!OperatingSystem.IsLinux() || !IsRoot || (File.GetUnixFileMode("/root") & UnixFileMode.OtherExecute) != 0) return;
        var directory = Path.Combine("/root", $"pamstore-lp-test-{Guid.NewGuid().ToString("N")[..12]}");

        var error = await Should.ThrowAsync<InvalidOperationException>(() =>
            PostgresCluster.StartAsync(new PostgresClusterOptions { Directory = directory, Throwaway = true, Log = output.WriteLine }));
        output.WriteLine(error.Message);

        error.Message.ShouldContain("'postgres'");
        error.Message.ShouldContain(directory);
        error.Message.ShouldContain("/root is 0700");
        Directory.Exists(directory).ShouldBeFalse();
    }
}
