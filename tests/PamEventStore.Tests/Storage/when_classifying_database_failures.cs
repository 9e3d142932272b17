using JasperFx.Events;
using Npgsql;
using PamEventStore.Storage;

namespace PamEventStore.Tests.Storage;

/// <summary>Which failures mean "the database is not there" (503, and group commit stops retrying upload by upload).</summary>
public sealed class when_classifying_database_failures
{
    private static PostgresException Server(string sqlState) => new("message", "ERROR", "ERROR", sqlState);

    /// <summary>What Marten throws when a stream's row lock is not granted within the command timeout.</summary>
    private sealed class Locked() : StreamLockedException("locked", Guid.NewGuid(), new NpgsqlException("x", new TimeoutException()));

    public static TheoryData<string, Exception, bool> Failures => new()
    {
        { "connection refused", new NpgsqlException("Failed to connect", new System.Net.Sockets.SocketException(111)), true },
        { "connection dropped", new NpgsqlException("Exception while reading from stream", new IOException("reset")), true },
        { "Npgsql's command timeout", new NpgsqlException("Exception while reading from stream", new TimeoutException()), true },
        { "wrapped by Marten", new InvalidOperationException("marten", new NpgsqlException("x", new IOException())), true },
        { "server shutting down", Server(PostgresErrorCodes.AdminShutdown), true },
        { "connection failure", Server("08006"), true },
        { "too many connections", Server(PostgresErrorCodes.TooManyConnections), true },
        { "read-only after a failover", Server(PostgresErrorCodes.ReadOnlySqlTransaction), true },
        { "a stream lock held past the timeout", new Marten.Exceptions.StreamLockedException(Guid.NewGuid(), new NpgsqlException("x", new TimeoutException())), false },
        { "the same, as JasperFx.Events defines it", new Locked(), false },
        { "serialization failure", Server(PostgresErrorCodes.SerializationFailure), false },
        { "deadlock", Server(PostgresErrorCodes.DeadlockDetected), false },
        { "statement_timeout", Server(PostgresErrorCodes.QueryCanceled), false },
        { "unique violation", Server(PostgresErrorCodes.UniqueViolation), false },
        { "a timeout of something else", new TimeoutException(), false },
        { "a bug", new InvalidOperationException("bug", new NullReferenceException()), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void only_the_database_itself_failing_counts_as_unavailable(string failure, Exception exception, bool unavailable) =>
        DatabaseFailures.IsUnavailable(exception).ShouldBe(unavailable, failure);
}
