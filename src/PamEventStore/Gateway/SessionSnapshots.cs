using Microsoft.Extensions.Caching.Memory;
using PamEventStore.Sessions;

namespace PamEventStore.Gateway;

/// <summary>
/// The snapshot of each session this node's group commit last read or wrote (in memory only), so that
/// the session's next upload is decided without reading it again. Nothing here is trusted to be current:
/// whatever was decided on it, appended or not, is written only if the session is still stored as it was
/// (<see cref="Storage.GuardedAppends"/>: its stream's version and chain head), and otherwise decided again
/// under the stream's lock, on what is stored (another node, an end of session, commits lost to a failover).
/// </summary>
public sealed class SessionSnapshots : IDisposable
{
    /// <summary>
    /// Sessions remembered, least recently used evicted. An entry is under a KB for a session that records as
    /// it should, a few KB with <see cref="PamSession.MaxListedGaps"/> gaps or many re-uploads at its newest
    /// offset: tens of MB at most. It covers the sessions a node took at its measured peak, a batch every 10 s
    /// each (BENCHMARKS.md); a session not remembered costs a read, in one round trip for its whole group.
    /// </summary>
    public const int Entries = 20_000;

    // Longer than a gateway's 10 s between uploads, and short enough that an idle session does not stay.
    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(2) };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Entries, CompactionPercentage = 0.1 });

    public PamSession? Find(string orgId, Guid sessionId) => _cache.TryGetValue((orgId, sessionId), out PamSession? snapshot) ? snapshot : null;

    /// <summary>Call only with a snapshot as committed: read from the store, or written by a commit that succeeded.</summary>
    public void Remember(string orgId, PamSession snapshot) => _cache.Set((orgId, snapshot.Id), snapshot, EntryOptions);

    public void Forget(string orgId, Guid sessionId) => _cache.Remove((orgId, sessionId));

    public void ForgetEverything() => _cache.Clear();

    public void Dispose() => _cache.Dispose();
}
