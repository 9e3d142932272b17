using System.Collections.Immutable;

namespace PamEventStore.LocalPostgres;

public sealed record PostgresClusterOptions
{
    /// <summary>Cluster root: holds data/, server.log, the Unix socket and the port file.</summary>
    public required string Directory { get; init; }

    /// <summary>Stop the server and delete <see cref="Directory"/> on dispose.</summary>
    public bool Throwaway { get; init; }

    /// <summary>Null: reuse the port recorded in <see cref="Directory"/> if still free, else pick a free loopback port.</summary>
    public int? Port { get; init; }

    /// <summary>Created if missing; the connection string points at it.</summary>
    public string Database { get; init; } = "pamstore";

    /// <summary>False trades crash safety for speed (fsync, synchronous_commit and full_page_writes off): tests and benchmarks.</summary>
    public bool Durable { get; init; } = true;

    /// <summary>Extra server settings passed as -c name=value; they win over the defaults, except the port.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Directory holding initdb and pg_ctl; null (or unusable) means discover, see <see cref="PostgresBinaries.Find"/>.</summary>
    public string? BinDirectory { get; init; }

    public Action<string>? Log { get; init; }

    /// <summary>A throwaway cluster in a fresh directory under the system temp directory (reachable by the postgres user).</summary>
    public static PostgresClusterOptions InTempDirectory(string prefix = "pamstore-pg") => new()
    {
        // Short on purpose: the Unix socket path inside it must stay under 108 bytes.
        Directory = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid().ToString("N")[..12]}"),
        Throwaway = true,
    };
}
