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
    public async Task a_hang_up_stops_the_service_and_the_database_it_started()
    {
        await using var service = await ServiceProcess.StartAsync(Settings);
        File.Exists(PostmasterPid).ShouldBeTrue();
        using var process = Process.GetProcessById(service.ProcessId);

        using (var hangUp = Process.Start("kill", ["-HUP", service.ProcessId.ToString()])) await hangUp.WaitForExitAsync();

        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(patience.Token);
        File.Exists(PostmasterPid).ShouldBeFalse(service.Output);
    }

    public void Dispose()
    {
        // Should a test fail with the server running, it must not outlive the test run.
        if (File.Exists(PostmasterPid) && int.TryParse(File.ReadLines(PostmasterPid).FirstOrDefault(), out var pid))
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

        if (Directory.Exists(_data)) Directory.Delete(_data, recursive: true);
    }
}
