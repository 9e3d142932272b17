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
        + " (3) run `docker compose up -d` with the docker-compose.yml at the repository root.";
}
