using System.Diagnostics;
using System.Text.RegularExpressions;

namespace PamEventStore.LocalPostgres;

public static partial class PostgresBinaries
{
    public const int MinimumMajorVersion = 15;

    /// <summary>
    /// The directory holding initdb and pg_ctl of PostgreSQL >= 15: <paramref name="configured"/> if usable,
    /// then the first match on PATH, then the highest /usr/lib/postgresql/*/bin; null if none.
    /// </summary>
    public static string? Find(string? configured = null) => Locate(configured, out _)?.Directory;

    // Collects why each candidate was refused, so the not-found message can say "found 13.4 in ..., need >= 15".
    internal static (string Directory, int Major)? Locate(string? configured, out IReadOnlyList<string> rejected)
    {
        var reasons = new List<string>();
        rejected = reasons;
        foreach (var candidate in Candidates(configured).Distinct())
        {
            if (!File.Exists(Path.Combine(candidate, Exe("initdb"))) || !File.Exists(Path.Combine(candidate, Exe("pg_ctl"))))
            {
                if (candidate == configured) reasons.Add($"{candidate} does not contain initdb and pg_ctl");
                continue;
            }
            var major = MajorVersion(candidate, out var versionText);
            if (major >= MinimumMajorVersion) return (candidate, major.Value);
            reasons.Add($"{candidate} holds {versionText ?? "a PostgreSQL whose version could not be read"}");
        }
        return null;
    }

    internal static int? MajorVersion(string binDirectory, out string? versionText)
    {
        versionText = null;
        try
        {
            // --version is answered before pg_ctl's refusal to run as root, so no runuser needed.
            using var process = Process.Start(new ProcessStartInfo(Path.Combine(binDirectory, Exe("pg_ctl")), "--version")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null) return null;
            var output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000)) return null;
            versionText = output.Trim();
            var match = VersionPattern().Match(output);
            return match.Success ? int.Parse(match.Groups[1].Value) : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            return null;
        }
    }

    private static IEnumerable<string> Candidates(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured)) yield return configured;

        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var initdb = Path.Combine(dir, Exe("initdb"));
            if (!File.Exists(initdb)) continue;
            // /usr/local/bin/initdb is often a symlink; the real bin directory is the more useful answer.
            var real = new FileInfo(initdb).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
            var realDir = real is null ? null : Path.GetDirectoryName(real);
            if (realDir is not null && File.Exists(Path.Combine(realDir, Exe("pg_ctl")))) yield return realDir;
            yield return dir;
        }

        const string debianRoot = "/usr/lib/postgresql";
        if (System.IO.Directory.Exists(debianRoot))
        {
            var versioned = System.IO.Directory.EnumerateDirectories(debianRoot)
                .Select(d => (Dir: d, Major: int.TryParse(Path.GetFileName(d), out var m) ? m : 0))
                .Where(v => v.Major >= MinimumMajorVersion)
                .OrderByDescending(v => v.Major);
            foreach (var (dir, _) in versioned) yield return Path.Combine(dir, "bin");
        }
    }

    private static string Exe(string name) => OperatingSystem.IsWindows() ? name + ".exe" : name;

    [GeneratedRegex(@"\(PostgreSQL\)\s+(\d+)")]
    private static partial Regex VersionPattern();
}
