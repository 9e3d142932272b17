using System.Globalization;

namespace PamEventStore.LocalPostgres;

/// <summary>
/// A cluster directory at a name anyone can work out, in a directory anyone can write to (such as
/// <c>/var/tmp</c>): someone else may have made it first, to hand this process a cluster of their own
/// (a postmaster.pid naming their server, their settings, their superuser). It is used only when it is
/// this process's own: made here, or by this user before.
/// </summary>
public static class SharedPlaceDirectory
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Makes <paramref name="path"/> (writable by its owner only) unless it exists, then checks what stands
    /// there, without following a link: a directory, owned by this user (as root, by <c>postgres</c>, which
    /// the cluster's directory is handed to), that no one else may write to.
    /// </summary>
    /// <returns>Null when it is ours to use; otherwise why not, in a sentence.</returns>
    public static async Task<string?> ClaimAsync(string path, CancellationToken ct = default)
    {
        if (OperatingSystem.IsWindows()) return null;

        // Made before it is checked, so one made by someone else between the two is caught by the check.
        // Others may enter it (as root, the postgres user must, before it is handed the directory); its data directory is the cluster's alone.
        const UnixFileMode ownerWrites = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        if (!Path.Exists(path)) Directory.CreateDirectory(path, ownerWrites);

        // stat without -L describes the link itself, not where it points.
        var stat = await ProcessRunner.RunAsync("stat", ["-c", "%U|%F|%a", "--", path], "/", CommandTimeout, ct, asPostgresUser: false);
        if (stat.ExitCode != 0) return $"{path} could not be examined ({stat.StdErr.Trim()}).";

        var fields = stat.StdOut.Trim().Split('|');
        if (fields.Length != 3 || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var octal))
            return $"{path} could not be examined (stat gave '{stat.StdOut.Trim()}').";

        var (owner, type) = (fields[0], fields[1]);
        if (type != "directory") return $"{path} is a {type}, not a directory of its own.";

        // The mode in octal digits: the group's and others' write bits.
        if ((octal / 10 % 10 & 2) != 0 || (octal % 10 & 2) != 0) return $"{path} exists and others may write to it.";

        var owners = ProcessRunner.RunAsPostgresUser ? new[] { Environment.UserName, "postgres" } : [Environment.UserName];
        return owners.Contains(owner, StringComparer.Ordinal) ? null : $"{path} exists and belongs to {owner}, not to {string.Join(" or ", owners)}.";
    }
}
