namespace PamEventStore.LocalPostgres;

public sealed class PostgresNotFoundException : Exception
{
    public PostgresNotFoundException(string? detail = null, Exception? innerException = null)
        : base(BuildMessage(detail), innerException)
    {
    }

    private static string BuildMessage(string? detail) =>
        $"No local PostgreSQL >= {PostgresBinaries.MinimumMajorVersion} (initdb and pg_ctl) was found"
        + (string.IsNullOrWhiteSpace(detail) ? "." : $": {detail}.")
        + " Three ways out:"
        + $" (1) install PostgreSQL {PostgresBinaries.MinimumMajorVersion} or newer (e.g. `apt-get install postgresql`) so that initdb and pg_ctl are on PATH or under /usr/lib/postgresql/<major>/bin;"
        + " (2) point at an existing server by setting ConnectionStrings:Marten (environment variable ConnectionStrings__Marten);"
        + " (3) start one with Docker, using the docker-compose.yml at the repository root: `docker compose up -d postgres`, then set"
        + " ConnectionStrings__Marten=\"Host=127.0.0.1;Port=5432;Database=pamstore;Username=pamstore;Password=pamstore\""
        + " (or `docker compose up -d` to run the whole service in containers on port 5080).";
}

/// <summary>
/// The server cannot be run from the requested directory: running as root, the server runs as the OS
/// user <c>postgres</c>, which cannot reach or write it (typically one under <c>/root</c>, which is 0700);
/// or its path holds a character pg_ctl cannot pass to the shell that starts the server.
/// </summary>
public sealed class PostgresDirectoryUnusableException(string message) : InvalidOperationException(message);
