using Microsoft.Extensions.Options;
using PamEventStore.LocalPostgres;

namespace PamEventStore;

/// <summary>
/// A setting the node cannot run without is missing or wrong (a master key, token validation, the
/// database in Production). The process says why in one line and exits 1: an operator's mistake, not a
/// crash, so no stack trace.
/// </summary>
public sealed class StartRefusedException(string message) : InvalidOperationException(message)
{
    /// <summary>Why the node refuses to start, when <paramref name="error"/> (or what it wraps) is such a refusal; null for a real failure.</summary>
    public static string? Reason(Exception error)
    {
        for (Exception? e = error; e is not null; e = e is AggregateException { InnerExceptions.Count: 1 } one ? one.InnerExceptions[0] : e.InnerException)
        {
            if (e is StartRefusedException or OptionsValidationException or PostgresNotFoundException or PostgresDirectoryUnusableException) return e.Message;

            // A setting that does not parse ("Failed to convert configuration value 'abc' at 'Uploads:MaxBatchBytes'
            // to type 'System.Int32'."), an address to listen on that is no URL.
            if (e is InvalidOperationException && e.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal)) return e.Message;
            if (e is FormatException && e.Message.StartsWith("Invalid url", StringComparison.Ordinal)) return $"{e.Message} (--urls or ASPNETCORE_URLS: where to listen, such as http://0.0.0.0:5080).";

            // The database the node was pointed at does not answer, or refuses it, while the node starts (its
            // schema is brought up to date then): an operator's matter, which the orchestrator retries.
            if (e is Npgsql.NpgsqlException) return $"PostgreSQL (ConnectionStrings:Marten) cannot be used: {e.Message}{(e.InnerException is { } inner ? $" ({inner.Message})" : "")}";
        }

        return null;
    }
}
