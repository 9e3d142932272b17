namespace PamEventStore.Http;

/// <summary>
/// Requests that hold much memory take turns: at most <paramref name="atOnce"/> hold one, at most
/// <paramref name="maxWaiting"/> wait up to <paramref name="wait"/> for one, and the rest are turned
/// away at once (each waiter holds its connection, and what the server buffered of its request).
/// </summary>
public sealed class Turns(int atOnce, TimeSpan wait, int maxWaiting)
{
    private readonly SemaphoreSlim _free = new(atOnce, atOnce);
    private int _waiting;

    public int AtOnce => atOnce;

    /// <summary>Requests waiting for a turn now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>A turn, to dispose once its request is done with it; null when none came in time or too many wait already.</summary>
    public async Task<IDisposable?> TakeAsync(CancellationToken ct)
    {
        if (_free.Wait(0, CancellationToken.None)) return new Turn(_free);
        if (!TryJoinWaiting()) return null;

        try
        {
            return await _free.WaitAsync(wait, ct) ? new Turn(_free) : null;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    // Compare-and-swap: a request turned away never takes the place of one that still had it.
    private bool TryJoinWaiting()
    {
        for (var waiting = Waiting; waiting < maxWaiting; waiting = Waiting)
        {
            if (Interlocked.CompareExchange(ref _waiting, waiting + 1, waiting) == waiting) return true;
        }

        return false;
    }

    private sealed class Turn(SemaphoreSlim free) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) free.Release();
        }
    }
}
