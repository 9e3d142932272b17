using JasperFx.Events;
using Npgsql;

namespace PamEventStore.Storage;

/// <summary>Failures of the database itself, as opposed to failures of what a request asked of it.</summary>
public static class DatabaseFailures
{
    /// <summary>
    /// The connection or the server failed, not anything the request holds: the same request would
    /// succeed once the database is back. That is a connection refused, dropped or timed out by Npgsql,
    /// a server shutting down or out of connections, or a primary turned read-only by a failover. A lock
    /// held too long (by another request or node), a deadlock, a serialization failure or a statement
    /// cancelled by the server's <c>statement_timeout</c> is not this: the database answered. Marten wraps
    /// what Npgsql throws, so the chain of inner exceptions is read, outermost first.
    /// </summary>
    public static bool IsUnavailable(Exception failure)
    {
        foreach (var cause in Causes(failure))
        {
            if (IsStreamLock(cause)) return false;
            switch (cause)
            {
                case PostgresException server:
                    return server.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exception
                           || server.SqlState.StartsWith("53", StringComparison.Ordinal) // insufficient resources
                           || server.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
                               or PostgresErrorCodes.ReadOnlySqlTransaction;
                // Npgsql's own: an I/O or socket failure, or its connect or command timeout.
                case NpgsqlException { IsTransient: true }:
                    return true;
            }
        }

        return false;
    }

    /// <summary>Npgsql or the server failed the command (the transaction may be aborted), as opposed to reading what it returned.</summary>
    public static bool IsFromDatabase(Exception failure) => Causes(failure).Any(cause => cause is NpgsqlException);

    /// <summary>A session's stream was held (by another request or node) for longer than the command timeout (half of it, for a guarded append).</summary>
    public static bool IsStreamLocked(Exception failure) => Causes(failure).Any(IsStreamLock);

    // Marten's, the one JasperFx.Events defines for event stores in general, and a guarded append's
    // lock_timeout (GuardedAppends).
    private static bool IsStreamLock(Exception cause) =>
        cause is Marten.Exceptions.StreamLockedException or StreamLockedException or PostgresException { SqlState: PostgresErrorCodes.LockNotAvailable };

    private static IEnumerable<Exception> Causes(Exception failure)
    {
        for (var cause = failure; cause is not null; cause = cause.InnerException) yield return cause;
    }
}
