using System.Diagnostics;
using Npgsql;
using Xunit.Abstractions;

namespace PamEventStore.LocalPostgres.Tests;

internal static class TestSupport
{
    public static bool IsRoot => OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess;

    public static PostgresClusterOptions Throwaway(ITestOutputHelper output) =>
        PostgresClusterOptions.InTempDirectory("pamstore-lp-test") with { Durable = false, Log = output.WriteLine };

    public static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    // Unpooled, so a stopped server is noticed instead of being hidden behind a pooled connection.
    public static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 5 }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }
}

/// <summary>A directory for a persistent cluster that the test removes afterwards, stopping any server left in it.</summary>
internal sealed class ScratchDirectory : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"pamstore-lp-test-{Guid.NewGuid().ToString("N")[..12]}");

    public string PostmasterPid => System.IO.Path.Combine(Path, "data", "postmaster.pid");

    public void Dispose()
    {
        if (File.Exists(PostmasterPid))
        {
            var pgCtl = System.IO.Path.Combine(PostgresBinaries.Find()!, "pg_ctl");
            var start = TestSupport.IsRoot
                ? new ProcessStartInfo("runuser") { ArgumentList = { "-u", "postgres", "--", pgCtl } }
                : new ProcessStartInfo(pgCtl);
            foreach (var a in new[] { "-D", System.IO.Path.Combine(Path, "data"), "-m", "immediate", "-w", "stop" }) start.ArgumentList.Add(a);
            start.WorkingDirectory = "/";
            using var process = Process.Start(start)!;
            process.WaitForExit(15_000);
        }
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
