using Npgsql;

namespace PamEventStore.Storage;

/// <summary>Failures of the database itself, as opposed to failures of what a request asked of it.</summary>
public static class DatabaseFailures
{
    /// <summary>
    /// The connection or the server failed, not anything the request holds: the same request would
    /// succeed once the database is back. A deadlock, a serialization failure or a lock timeout is not
    /// this. Marten wraps what Npgsql throws once a connection is open, so the whole chain is read.
    /// </summary>
    public static bool IsUnavailable(Exception failure)
    {
        for (var cause = failure; cause is not null; cause = cause.InnerException)
        {
            switch (cause)
            {
                case PostgresException server:
                    return server.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exception
                           || server.SqlState.StartsWith("53", StringComparison.Ordinal) // insufficient resources
                           || server.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow;
                case NpgsqlException { IsTransient: true }:
                case TimeoutException:
                    return true;
            }
        }

        return false;
    }
}
