using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PamEventStore.Testing;

/// <summary>
/// The built service running as its own process on Kestrel and a real loopback socket: for what the
/// in-memory test server does not do (request size limits, chunked bodies, the command line).
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output;

    private ServiceProcess(Process process, StringBuilder output, Uri baseAddress)
    {
        _process = process;
        _output = output;
        BaseAddress = baseAddress;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };

        // A test or benchmark run that exits without disposing (killed, Environment.Exit) must not leave the service running.
        AppDomain.CurrentDomain.ProcessExit += KillOnExit;
    }

    public Uri BaseAddress { get; }

    public int ProcessId => _process.Id;

    public HttpClient Client { get; }

    public string Output
    {
        get
        {
            lock (_output) return _output.ToString();
        }
    }

    /// <param name="settings">Configuration keys (":" or "__"), including ASPNETCORE_ENVIRONMENT to run as other than Testing.</param>
    /// <param name="arguments">The service's command line (the address it listens on is given as <c>ASPNETCORE_URLS</c>).</param>
    public static async Task<ServiceProcess> StartAsync(IReadOnlyDictionary<string, string> settings, params string[] arguments)
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        var (process, output) = Launch(new Dictionary<string, string>(settings) { ["ASPNETCORE_URLS"] = url }, arguments);
        var service = new ServiceProcess(process, output, new Uri(url));

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) throw new InvalidOperationException($"The service exited with {process.ExitCode}:\n{service.Output}");
            try
            {
                if ((await service.Client.GetAsync("/health")).StatusCode == HttpStatusCode.OK) return service;
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        await service.DisposeAsync();
        throw new TimeoutException($"The service did not become healthy:\n{service.Output}");
    }

    /// <summary>Runs a command of the service's command line (e.g. token) to completion.</summary>
    public static async Task<(int ExitCode, string Output)> RunCommandAsync(IReadOnlyDictionary<string, string> settings, params string[] arguments)
    {
        var (process, output) = Launch(settings, arguments);
        using (process)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                // A command that does not end (a service that started when the test expected it to refuse)
                // must not outlive the test.
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                lock (output) throw new TimeoutException($"`{string.Join(' ', arguments)}` did not end within 60 s:\n{output}");
            }

            lock (output) return (process.ExitCode, output.ToString());
        }
    }

    private static (Process, StringBuilder) Launch(IReadOnlyDictionary<string, string> settings, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(Repository.ServiceAssembly)!,
        };
        start.ArgumentList.Add(Repository.ServiceAssembly);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Testing";
        foreach (var (key, value) in settings) start.Environment[key.Replace(":", "__")] = value;

        var output = new StringBuilder();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, output);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void KillOnExit(object? sender, EventArgs e)
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
    }

    public async ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= KillOnExit;
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
