using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PamEventStore.Benchmarks;

/// <summary>One reported figure; <see cref="Ratio"/> is what the target is judged on when there is one.</summary>
public sealed record Figure(string Key, string Name, double Value, string Unit, double? Baseline, double? Ratio, string Target, bool? Met);

public sealed record BenchmarkResults(
    string Mode,
    DateTimeOffset StartedAt,
    double DurationSeconds,
    IReadOnlyDictionary<string, string> Machine,
    IReadOnlyDictionary<string, string> PostgresSettings,
    IReadOnlyList<Figure> Figures,
    IReadOnlyDictionary<string, double> Details,
    IReadOnlyDictionary<string, string>? ServiceSettings = null)
{
    public static readonly string[] RequiredFigures =
    [
        "ingest", "duplicates", "latency_at_80pct", "append_latency_growth", "page_latency_growth", "page_vs_raw", "disk_per_payload_byte", "peak_rss", "sustained_sessions", "capacity_sessions",
    ];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public async Task WriteAsync(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(this, Json));
    }

    /// <summary>
    /// Reads a results file back and checks it is a whole run that worked: of the <paramref name="mode"/>
    /// asked for (when given), every figure there with a positive number, each ratio its value over its
    /// baseline, a verdict for each target, and no upload failed in the fleet phases.
    /// </summary>
    public static BenchmarkResults Verify(string path, string? mode = null)
    {
        var results = JsonSerializer.Deserialize<BenchmarkResults>(File.ReadAllText(path), Json)
                      ?? throw new InvalidDataException($"{path} is empty.");
        if (results.Figures is null) throw new InvalidDataException($"{path} has no figures.");
        if (mode is not null && results.Mode != mode) throw new InvalidDataException($"{path} is a {results.Mode} run, not {mode}.");
        var missing = RequiredFigures.Except(results.Figures.Select(f => f.Key)).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{path} lacks figures: {string.Join(", ", missing)}");

        var problems = results.Figures.SelectMany(Problems)
            .Concat((results.Details ?? new Dictionary<string, double>())
                .Where(d => d.Key.EndsWith("_failures", StringComparison.Ordinal) && d.Value != 0)
                .Select(d => $"{d.Key} = {d.Value}: uploads failed"))
            .ToList();
        if (problems.Count > 0) throw new InvalidDataException($"{path}: {string.Join("; ", problems)}");
        return results;
    }

    private static IEnumerable<string> Problems(Figure f)
    {
        if (!(double.IsFinite(f.Value) && f.Value > 0)) yield return $"{f.Key} has no positive value ({f.Value})";
        if (f.Baseline is { } baseline && !(double.IsFinite(baseline) && baseline > 0)) yield return $"{f.Key} has no positive baseline ({baseline})";
        if (f.Ratio is { } ratio && (!double.IsFinite(ratio) || f.Baseline is not { } of || !(Math.Abs(ratio - f.Value / of) <= 1e-9 * Math.Abs(ratio))))
            yield return $"{f.Key}'s ratio {ratio} is not its value over its baseline";
        if (!string.IsNullOrEmpty(f.Target) && f.Met is null) yield return $"{f.Key} has a target but no verdict";
    }

    public void Print(TextWriter output)
    {
        output.WriteLine();
        output.WriteLine($"{"figure",-52} {"value",14} {"baseline",14} {"ratio",8}  {"target",-10} met");
        output.WriteLine(new string('-', 108));
        foreach (var f in Figures)
        {
            output.WriteLine($"{f.Name,-52} {Format(f.Value, f.Unit),14} {(f.Baseline is { } b ? Format(b, f.Unit) : ""),14} {(f.Ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) : ""),8}  {f.Target,-10} {(f.Met switch { true => "yes", false => "NO", null => "" })}");
        }
    }

    private static string Format(double value, string unit) => unit switch
    {
        "ms" => value.ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        "MiB" => value.ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
        "x" => value.ToString("0.00", CultureInfo.InvariantCulture),
        _ => value.ToString("0", CultureInfo.InvariantCulture) + (unit.Length > 0 ? " " + unit : ""),
    };
}
