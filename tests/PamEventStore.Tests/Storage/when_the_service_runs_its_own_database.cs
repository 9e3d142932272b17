using System.Diagnostics;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Storage;

/// <summary>The service as `dotnet run` starts it with no connection string: it runs a PostgreSQL of its own, and stops it however it ends.</summary>
public sealed class when_the_service_runs_its_own_database : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"pamstore-own-{Guid.NewGuid():N}"[..24]);

    private string PostmasterPid => Path.Combine(_data, "postgres", "data", "postmaster.pid");

    private Dictionary<string, string> Settings => new() { ["LocalData:Directory"] = _data, ["Logging:LogLevel:Default"] = "Warning" };

    [Fact]
    public async Task an_invalid_argument_after_its_database_started_leaves_that_database_stopped()
    {
        var (exitCode, output) = await ServiceProcess.RunCommandAsync(Settings, "--no-such-option");

        exitCode.ShouldNotBe(0, output);
        Directory.Exists(Path.Combine(_data, "postgres", "data")).ShouldBeTrue(output);
        File.Exists(PostmasterPid).ShouldBeFalse(output);
    }

    [Fact]
    public async Task a_hang_up_stops_the_service_and_the_database_it_started_unless_hang_ups_are_ignored()
    {
        await using var service = await ServiceProcess.StartAsync(Settings);
        File.Exists(PostmasterPid).ShouldBeTrue();
        using var process = Process.GetProcessById(service.ProcessId);

        await SignalAsync(service, "-HUP");

        if (HangUpsIgnored)
        {
            // Run under nohup, as this test is then: the service inherits the ignored SIGHUP and keeps
            // running, as nohup asks. It stops on SIGTERM instead, and stops its database as it does.
            await Task.Delay(TimeSpan.FromSeconds(2));
            process.HasExited.ShouldBeFalse(service.Output);
            (await service.Client.GetAsync("/health")).StatusCode.ShouldBe(System.Net.HttpStatusCode.OK);
            await SignalAsync(service, "-TERM");
        }

        await ShouldExitWithin(process, TimeSpan.FromSeconds(30), service);
        File.Exists(PostmasterPid).ShouldBeFalse(service.Output);
    }

    /// <summary>SIGHUP is ignored by this process (a run under nohup), and so by the processes it starts.</summary>
    private static bool HangUpsIgnored =>
        File.ReadLines("/proc/self/status").FirstOrDefault(line => line.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
        && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 1) != 0;

    [Fact]
    public async Task a_directory_pg_ctl_cannot_pass_to_its_shell_moves_the_database_where_it_can_run()
    {
        var settings = new Dictionary<string, string>(Settings) { ["LocalData:Directory"] = Path.Combine(_data, "price$HOME") };
        await using var service = await ServiceProcess.StartAsync(settings);
        var fallback = _fallback = System.Text.RegularExpressions.Regex.Match(service.Output, "/var/tmp/pamstore-postgres-[0-9a-f]{12}").Value;
        fallback.ShouldNotBeEmpty(service.Output);
        service.Output.ShouldContain("pg_ctl cannot pass to the shell");
        File.Exists(Path.Combine(fallback, "data", "postmaster.pid")).ShouldBeTrue(service.Output);
        (await service.Client.GetAsync("/health")).StatusCode.ShouldBe(System.Net.HttpStatusCode.OK);

        using var process = Process.GetProcessById(service.ProcessId);
        await SignalAsync(service, "-TERM");
        await ShouldExitWithin(process, TimeSpan.FromSeconds(30), service);
        File.Exists(Path.Combine(fallback, "data", "postmaster.pid")).ShouldBeFalse(service.Output);

        // Its name is one anyone can work out, in /var/tmp: once others may write to it, it is not used.
        if (OperatingSystem.IsWindows()) return;
        var mode = File.GetUnixFileMode(fallback);
        File.SetUnixFileMode(fallback, mode | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite);
        await ShouldRefuseFallback(settings, $"{fallback} exists and others may write to it.");
        File.SetUnixFileMode(fallback, mode);

        // Nor once it belongs to someone else, who could have made it to hand the service a cluster of theirs.
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync("chown", "nobody:", fallback);
            await ShouldRefuseFallback(settings, $"{fallback} exists and belongs to nobody, not to root or postgres.");
            await RunAsync("chown", "postgres:", fallback);
        }

        // Nor when it is a link to a directory elsewhere, whoever owns that.
        var elsewhere = fallback + "-elsewhere";
        Directory.Move(fallback, elsewhere);
        try
        {
            File.CreateSymbolicLink(fallback, elsewhere);
            await ShouldRefuseFallback(settings, $"{fallback} is a symbolic link, not a directory of its own.");
            File.Exists(Path.Combine(elsewhere, "data", "postmaster.pid")).ShouldBeFalse();
        }
        finally
        {
            File.Delete(fallback);
            Directory.Move(elsewhere, fallback);
        }

        // Its own again, it is used again.
        await using (var again = await ServiceProcess.StartAsync(settings))
        {
            again.Output.ShouldContain($"Keeping the local cluster in {fallback} instead");
            (await again.Client.GetAsync("/health")).StatusCode.ShouldBe(System.Net.HttpStatusCode.OK);
        }
    }

    private static async Task ShouldRefuseFallback(Dictionary<string, string> settings, string reason)
    {
        var (exitCode, output) = await ServiceProcess.RunCommandAsync(settings);
        exitCode.ShouldBe(1, output);
        output.ShouldContain($"Its fallback is not safe to use: {reason}");
    }

    private static async Task RunAsync(string command, params string[] arguments)
    {
        using var process = Process.Start(command, arguments);
        await process.WaitForExitAsync();
        process.ExitCode.ShouldBe(0, $"{command} {string.Join(' ', arguments)}");
    }

    private string? _fallback;

    private static async Task SignalAsync(ServiceProcess service, string signal)
    {
        using var kill = Process.Start("kill", [signal, service.ProcessId.ToString()]);
        await kill.WaitForExitAsync();
    }

    private static async Task ShouldExitWithin(Process process, TimeSpan patience, ServiceProcess service)
    {
        using var timeout = new CancellationTokenSource(patience);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new ShouldAssertException($"The service did not stop within {patience.TotalSeconds:0} s:\n{service.Output}");
        }
    }

    public void Dispose()
    {
        if (_fallback is { Length: > 0 })
        {
            StopServer(Path.Combine(_fallback, "data", "postmaster.pid"));
            if (Directory.Exists(_fallback)) Directory.Delete(_fallback, recursive: true);
        }

        StopServer(PostmasterPid);
        if (Directory.Exists(_data)) Directory.Delete(_data, recursive: true);
    }

    // Should a test fail with the server running, it must not outlive the test run.
    private static void StopServer(string postmasterPid)
    {
        if (File.Exists(postmasterPid) && int.TryParse(File.ReadLines(postmasterPid).FirstOrDefault(), out var pid))
        {
            try
            {
                using var postmaster = Process.GetProcessById(pid);
                postmaster.Kill();
                postmaster.WaitForExit(10_000);
            }
            catch (ArgumentException)
            {
            }
        }
    }
}
