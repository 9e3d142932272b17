namespace PamEventStore.Viewing;

/// <summary>
/// Wakes the live tails of a session when this node stores something in it, so they read it at once
/// instead of at their next poll. Only this node's commits are signalled: a tail polls as well, for what
/// other nodes store.
/// </summary>
public sealed class SessionSignals
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string OrgId, Guid SessionId), Listeners> _listening = [];

    /// <summary>Something of the session was committed on this node: every listener of it wakes.</summary>
    public void Signal(string orgId, Guid sessionId)
    {
        Listeners? woken;
        lock (_lock)
        {
            if (!_listening.Remove((orgId, sessionId), out woken)) return;
        }

        woken.Next.TrySetResult();
    }

    /// <summary>
    /// Listens from now on: a tail listens before it reads the store, so that a commit while it reads
    /// wakes its wait after. Dispose it once done with it.
    /// </summary>
    public Listener Listen(string orgId, Guid sessionId)
    {
        var key = (orgId, sessionId);
        lock (_lock)
        {
            if (!_listening.TryGetValue(key, out var listeners)) _listening[key] = listeners = new Listeners();
            listeners.Count++;
            return new Listener(this, key, listeners);
        }
    }

    private void Leave((string, Guid) key, Listeners listeners)
    {
        lock (_lock)
        {
            // The last listener of a session that was not signalled takes the entry away with it.
            if (--listeners.Count == 0 && _listening.TryGetValue(key, out var current) && current == listeners) _listening.Remove(key);
        }
    }

    internal sealed class Listeners
    {
        public TaskCompletionSource Next { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Count { get; set; }
    }

    public sealed class Listener : IDisposable
    {
        private readonly SessionSignals _signals;
        private readonly (string, Guid) _key;
        private readonly Listeners _listeners;
        private int _left;

        internal Listener(SessionSignals signals, (string, Guid) key, Listeners listeners) => (_signals, _key, _listeners) = (signals, key, listeners);

        /// <summary>Completes once the session was signalled since this listener began, after <paramref name="timeout"/> at the latest, or when <paramref name="ct"/> is cancelled.</summary>
        public async Task WaitAsync(TimeSpan timeout, CancellationToken ct)
        {
            try
            {
                await _listeners.Next.Task.WaitAsync(timeout, ct);
            }
            catch (TimeoutException)
            {
                // Nothing on this node within the poll: the tail reads the store anyway.
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _left, 1) == 0) _signals.Leave(_key, _listeners);
        }
    }
}
