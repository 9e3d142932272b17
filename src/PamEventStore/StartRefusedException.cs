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
        }

        return null;
    }
}
