using System.Diagnostics;
using System.Globalization;

namespace PamEventStore.LocalPostgres;

/// <summary>
/// The processes using a kept cluster, one file per handle in its <c>users</c> directory, naming the
/// process and when it started (a pid alone may have been given to another process since).
/// </summary>
internal static class Users
{
    /// <returns>The file that stands for this handle.</returns>
    public static string Join(string directory)
    {
        Directory.CreateDirectory(directory);
        using var self = Process.GetCurrentProcess();
        var file = Path.Combine(directory, $"{self.Id}-{Guid.NewGuid():N}");
        File.WriteAllText(file, Started(self).ToString(CultureInfo.InvariantCulture));
        return file;
    }

    /// <summary>Removes this handle's file, and the files of processes that are gone; counts the others.</summary>
    public static int LeaveAndCountOthers(string directory, string own)
    {
        File.Delete(own);
        if (!Directory.Exists(directory)) return 0;

        var others = 0;
        foreach (var file in Directory.GetFiles(directory))
        {
            if (IsAlive(file)) others++;
            else File.Delete(file);
        }

        return others;
    }

    private static bool IsAlive(string file)
    {
        if (!int.TryParse(Path.GetFileName(file).Split('-')[0], CultureInfo.InvariantCulture, out var pid)) return false;
        if (!long.TryParse(File.ReadAllText(file), CultureInfo.InvariantCulture, out var started)) return false;
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited && Started(process) == started;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    /// <summary>
    /// When the process started, in clock ticks since boot (<c>/proc/PID/stat</c>, field 22): exact, and
    /// unmoved by the wall clock being set. Elsewhere, its start time by the wall clock, to the second.
    /// </summary>
    private static long Started(Process process)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{process.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 19 && long.TryParse(fields[19], CultureInfo.InvariantCulture, out var ticks)) return ticks;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return process.StartTime.ToUniversalTime().Ticks / TimeSpan.TicksPerSecond;
    }
}
