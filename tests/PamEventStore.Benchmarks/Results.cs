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

    /// <summary>Reads a results file back and checks it holds every figure with a number.</summary>
    public static BenchmarkResults Verify(string path)
    {
        var results = JsonSerializer.Deserialize<BenchmarkResults>(File.ReadAllText(path), Json)
                      ?? throw new InvalidDataException($"{path} is empty.");
        var missing = RequiredFigures.Except(results.Figures.Select(f => f.Key)).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{path} lacks figures: {string.Join(", ", missing)}");
        var broken = results.Figures.Where(f => !double.IsFinite(f.Value)).Select(f => f.Key).ToList();
        if (broken.Count > 0) throw new InvalidDataException($"{path} has no value for: {string.Join(", ", broken)}");
        return results;
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
