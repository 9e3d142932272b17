using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace PamEventStore.Benchmarks;

/// <summary>
/// <c>--statements</c>: what PostgreSQL spends its time on, phase by phase. The cluster loads
/// <c>pg_stat_statements</c> (every statement, nested ones inside Marten's PL/pgSQL functions too) and
/// <c>auto_explain</c> (<c>EXPLAIN (ANALYZE, BUFFERS)</c> of a sample of statements, nested ones too, into
/// the server log). Each phase's statements are printed and written to
/// <c>bench-results/statements-&lt;phase&gt;.txt</c>; the sampled plans to <c>bench-results/postgres-plans.log</c>.
/// Both add work to every statement: a profiling run's figures are not the ones to judge.
/// </summary>
public sealed partial class StatementProfile(string connectionString, string outputDirectory)
{
    /// <summary>Share of statements whose plan is logged with its actual rows, time and buffers.</summary>
    private const string PlanSampleRate = "0.002";

    public static IReadOnlyDictionary<string, string> ClusterSettings { get; } = new Dictionary<string, string>
    {
        ["shared_preload_libraries"] = "pg_stat_statements,auto_explain",
        ["pg_stat_statements.track"] = "all",
        ["auto_explain.log_min_duration"] = "0",
        ["auto_explain.sample_rate"] = PlanSampleRate,
        ["auto_explain.log_analyze"] = "on",
        ["auto_explain.log_buffers"] = "on",
        ["auto_explain.log_nested_statements"] = "on",
    };

    public async Task StartAsync()
    {
        await ExecuteAsync("create extension if not exists pg_stat_statements");
        Directory.CreateDirectory(outputDirectory);
        foreach (var old in Directory.EnumerateFiles(outputDirectory, "statements-*.txt")) File.Delete(old);
    }

    public Task ResetAsync() => ExecuteAsync("select pg_stat_statements_reset()");

    /// <summary>The statements since the last reset, by total time: what a phase of <paramref name="units"/> uploads or pages cost.</summary>
    public async Task<string> ReportAsync(string phase, int units, string unit)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            """
            select calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, toplevel, query
            from pg_stat_statements
            where query not like '%pg_stat_statements%'
            order by total_exec_time desc
            limit 15
            """, connection);
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"{phase}: PostgreSQL statements by total execution time, {units} {unit}s (nested = run inside a function)");
        report.AppendLine(CultureInfo.InvariantCulture, $"{"calls",9} {"mean ms",8} {"ms/" + unit,10} {"rows",8} {"blocks",8}  statement");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var calls = reader.GetInt64(0);
            var total = reader.GetDouble(1);
            var nested = reader.GetBoolean(4) ? "" : "(nested) ";
            var query = Whitespace().Replace(reader.GetString(5), " ");
            report.AppendLine(CultureInfo.InvariantCulture,
                $"{calls,9} {total / calls,8:0.000} {total / units,10:0.000} {reader.GetInt64(2),8} {reader.GetInt64(3),8}  {nested}{(query.Length > 140 ? query[..140] + "..." : query)}");
        }

        var text = report.ToString();
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, $"statements-{phase}.txt"), text);
        return text;
    }

    /// <summary>The sampled plans <c>auto_explain</c> wrote to the server log.</summary>
    public void KeepPlans(string serverLog)
    {
        if (!File.Exists(serverLog)) return;
        var plans = File.ReadAllLines(serverLog).SkipWhile(line => !line.Contains("duration:", StringComparison.Ordinal));
        File.WriteAllLines(Path.Combine(outputDirectory, "postgres-plans.log"), plans);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
