namespace PamEventStore.Benchmarks;

/// <summary>
/// CPU seconds used by the service process and by the PostgreSQL server (postmaster and its
/// backends), read from /proc: what one upload costs each side, whatever the wall clock did.
/// </summary>
public sealed class CpuMeter(int servicePid, string postgresDataDirectory)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    public (double Service, double Postgres) Read()
    {
        var postmaster = int.Parse(File.ReadLines(Path.Combine(postgresDataDirectory, "postmaster.pid")).First());
        var postgres = 0.0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            var stat = TryStat(pid);
            if (stat is { } s && (pid == postmaster || s.ParentPid == postmaster)) postgres += s.CpuSeconds;
        }

        return (TryStat(servicePid)?.CpuSeconds ?? double.NaN, postgres);
    }

    private static (int ParentPid, double CpuSeconds)? TryStat(int pid)
    {
        try
        {
            // /proc/<pid>/stat: "pid (comm) state ppid ... utime(14) stime(15)"; comm may hold spaces, so split after ')'.
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return (int.Parse(fields[1]), (long.Parse(fields[11]) + long.Parse(fields[12])) / TicksPerSecond);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
