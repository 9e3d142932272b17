using System.Runtime.InteropServices;
using PamEventStore.Benchmarks;

// dotnet run -c Release --project tests/PamEventStore.Benchmarks -- [--quick] [--no-fsync] [--only ingest|latency|pages|fleets] [--statements] [--pg name=value]... [--service name=value]... [--fresh-wal] [--out bench-results/latest.json]
// dotnet run -c Release --project tests/PamEventStore.Benchmarks -- verify bench-results/latest.json [quick|full]

if (args is ["verify", var file, .. var rest] && rest.Length <= 1)
{
    try
    {
        var verified = BenchmarkResults.Verify(file, rest.FirstOrDefault());
        Console.WriteLine($"{file}: {verified.Figures.Count} figures ({verified.Mode} run), all present and consistent");
        return 0;
    }
    catch (Exception e) when (e is InvalidDataException or System.Text.Json.JsonException or IOException)
    {
        Console.Error.WriteLine(e.Message);
        return 1;
    }
}

// Ctrl+C or a kill still stops the service process and the throwaway PostgreSQL (their exit hooks).
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => Environment.Exit(130));
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Environment.Exit(143));

var quick = args.Contains("--quick");
var durable = !args.Contains("--no-fsync");
var onlyIndex = Array.IndexOf(args, "--only");
var only = onlyIndex >= 0 && onlyIndex + 1 < args.Length ? args[onlyIndex + 1] : null;
if (onlyIndex >= 0 && !BenchmarkRun.Phases.Contains(only))
{
    Console.Error.WriteLine($"--only takes one of: {string.Join(", ", BenchmarkRun.Phases)}");
    return 2;
}

// --pg name=value (repeatable) starts the throwaway PostgreSQL with that setting too, to compare settings A/B.
// --service name=value (repeatable) starts the service process with that configuration setting or
// environment variable too (e.g. DOTNET_gcServer=0), to compare runtime or service settings A/B.
if (Pairs("--pg", "backend_flush_after=256kB") is not { } postgresSettings) return 2;
if (Pairs("--service", "DOTNET_gcServer=0") is not { } serviceSettings) return 2;

// A one-phase run lacks figures `verify` requires: it never overwrites latest.json.
var outIndex = Array.IndexOf(args, "--out");
var output = outIndex >= 0 && outIndex + 1 < args.Length ? args[outIndex + 1] : Path.Combine("bench-results", only is null ? "latest.json" : $"latest-{only}.json");

#if DEBUG
Console.Error.WriteLine("warning: a Debug build; figures are only meaningful with -c Release");
#endif

var run = new BenchmarkRun(new BenchmarkSize(quick), durable, message => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}"), only, args.Contains("--statements"), postgresSettings, args.Contains("--fresh-wal"), serviceSettings);
var results = await run.RunAsync();
results.Print(Console.Out);
await results.WriteAsync(output);
Console.WriteLine($"\nwritten to {Path.GetFullPath(output)} ({results.DurationSeconds:0} s, {results.Mode} run)");
return 0;

Dictionary<string, string>? Pairs(string option, string example)
{
    var pairs = new Dictionary<string, string>();
    for (var i = 0; i < args.Length; i++)
    {
        if (args[i] != option) continue;
        if (i + 1 >= args.Length || args[i + 1].Split('=', 2) is not [var name, var value] || name.Length == 0)
        {
            Console.Error.WriteLine($"{option} takes name=value, e.g. {option} {example}");
            return null;
        }
        pairs[name] = value;
    }

    return pairs;
}
