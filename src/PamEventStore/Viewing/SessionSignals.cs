using System.Collections.Concurrent;

namespace PamEventStore.Viewing;

/// <summary>
/// Wakes the live tails of a session when this node stores something in it, so they read it at once
/// instead of at their next poll. Only this node's commits are signalled: a tail polls as well, for what
/// other nodes store.
/// </summary>
public sealed class SessionSignals
{
    private readonly ConcurrentDictionary<(string OrgId, Guid SessionId), TaskCompletionSource> _waiting = new();

    /// <summary>Something of the session was committed on this node.</summary>
    public void Signal(string orgId, Guid sessionId)
    {
        if (_waiting.TryRemove((orgId, sessionId), out var waiting)) waiting.TrySetResult();
    }

    /// <summary>Completes at the session's next signal, after <paramref name="timeout"/> at the latest, or when <paramref name="ct"/> is cancelled.</summary>
    public async Task WaitAsync(string orgId, Guid sessionId, TimeSpan timeout, CancellationToken ct)
    {
        var next = _waiting.GetOrAdd((orgId, sessionId), _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await next.Task.WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
            // Nothing on this node within the poll: the tail reads the store anyway.
        }
        finally
        {
            // The last tail to stop waiting on an unsignalled session takes its waiter away with it
            // (another tail's waiter, if it came meanwhile, is simply created again).
            if (!next.Task.IsCompleted) _waiting.TryRemove(KeyValuePair.Create((orgId, sessionId), next));
        }
    }
}
