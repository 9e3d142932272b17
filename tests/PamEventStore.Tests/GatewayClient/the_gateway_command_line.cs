using System.Diagnostics;
using System.Net;
using System.Text;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.GatewayClient;

/// <summary>
/// pam-gateway as a user runs it: whatever is wrong (an argument, a key, a file, the service) it says in
/// one line and exits non-zero, without a stack trace; and a replay that lost part of its cast says so.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class the_gateway_command_line(PamStoreHost store) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pam-gateway-").FullName;

    private string Key => TestKeys.SigningKey;

    private string Cast(params string[] events)
    {
        var path = Path.Combine(_directory, $"{Guid.NewGuid():N}.cast");
        File.WriteAllLines(path, ["{\"version\": 2, \"width\": 80, \"height\": 24}", .. events]);
        return path;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        start.ArgumentList.Add(Repository.GatewayAssembly);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"pam-gateway {string.Join(' ', arguments)} did not end within 60 s");
        }

        var both = await output;
        return (process.ExitCode, both[0] + both[1]);
    }

    private static void ShouldFailSaying((int ExitCode, string Output) run, string saying)
    {
        run.ExitCode.ShouldNotBe(0, run.Output);
        run.Output.ShouldContain(saying, Case.Sensitive, run.Output);
        run.Output.ShouldNotContain("Unhandled exception", Case.Sensitive, run.Output);
        run.Output.Split('\n').ShouldNotContain(line => line.TrimStart().StartsWith("at "), run.Output);
    }

    [Fact]
    public async Task arguments_that_cannot_work_are_refused_before_anything_is_sent()
    {
        var cast = Cast("[0.1, \"o\", \"a\"]");

        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key", Key, "--url", "foo"), "--url must be the service's absolute http(s) address");
        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key", Key, "--url", "http://127.0.0.1:1/prefix/"), "without a path of its own");
        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key", Key, "--speed", "1e-300"), "--speed must be between 0.001 and 1000");
        ShouldFailSaying(await RunAsync("simulate", "--signing-key", Key, "--gateways", "-1"), "--gateways must be a positive number");
        ShouldFailSaying(await RunAsync("simulate", "--signing-key", Key, "--batch-bytes", "0"), "--batch-bytes must be a positive number");
    }

    [Fact]
    public async Task a_missing_or_wrong_signing_key_is_said_in_one_line()
    {
        var cast = Cast("[0.1, \"o\", \"a\"]");

        // From another directory than the repository's, the default key file is not there.
        ShouldFailSaying(await RunAsync("replay", "--cast", cast), "pam-gateway: no token signing key at");
        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key-file", Path.Combine(_directory, "none.key")), "pam-gateway: no token signing key at");
        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key", "x!!"), "is not the service's key");
        ShouldFailSaying(await RunAsync("replay", "--cast", cast, "--signing-key", "AAAA"), "is not the service's key (base64 of at least 32 bytes): it is shorter.");
    }

    [Fact]
    public async Task a_cast_that_cannot_be_played_and_a_service_that_cannot_be_reached_are_said_in_one_line()
    {
        ShouldFailSaying(await RunAsync("replay", "--signing-key", Key, "--cast", Cast("[1e300, \"o\", \"a\"]")), "its time is past");
        ShouldFailSaying(await RunAsync("replay", "--signing-key", Key, "--cast", _directory), "pam-gateway:");
        ShouldFailSaying(await RunAsync("replay", "--signing-key", Key, "--cast", Cast("[0.1, \"o\", \"a\"]"), "--url", "http://127.0.0.1:1"), "pam-gateway: Connection refused");
        ShouldFailSaying(await RunAsync("simulate", "--signing-key", Key, "--url", "http://127.0.0.1:1", "--duration", "1s"), "pam-gateway: Connection refused");

        // A watcher that never reached the service has nothing to resume: it says so instead of retrying forever.
        ShouldFailSaying(await RunAsync("watch", "--signing-key", Key, "--url", "http://127.0.0.1:1", "--session", Guid.NewGuid().ToString()), "pam-gateway: the service cannot be reached");
    }

    [Fact]
    public async Task a_replay_whose_final_upload_the_service_refused_ends_the_session_and_fails()
    {
        // An output larger than the service takes in one batch (the test service's limit is small).
        var service = await store.ProcessAsync();
        var cast = Cast("[0.01, \"o\", \"before\\r\\n\"]", $"[0.02, \"o\", \"{new string('x', PamStoreHost.ProcessBatchLimit * 2)}\"]");

        var (exitCode, output) = await RunAsync("replay", "--signing-key", Key, "--url", service.BaseAddress.ToString(), "--org", $"org-{Guid.NewGuid():N}", "--interval", "5s", "--cast", cast);

        exitCode.ShouldBe(1, output);
        output.ShouldContain("its final upload was refused (413");
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
