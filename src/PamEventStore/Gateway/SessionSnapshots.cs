using Microsoft.Extensions.Caching.Memory;
using PamEventStore.Sessions;

namespace PamEventStore.Gateway;

/// <summary>
/// The snapshot of each session this node's group commit last read or wrote (in memory only), so that
/// the session's next upload is decided without reading it again. Nothing here is trusted to be current:
/// the append of what was decided on it is refused if the stream has moved on since
/// (<see cref="Storage.GuardedAppends"/>: another node, an end of session), and then the upload is decided
/// again under the stream's lock, on what is stored, and the snapshot forgotten.
/// </summary>
public sealed class SessionSnapshots : IDisposable
{
    /// <summary>
    /// Sessions remembered, least recently used evicted: one to two KB each (the last offset's fingerprints,
    /// up to <see cref="PamSession.MaxListedGaps"/> gaps). More than one node uploads to in a minute at its
    /// measured peak; a session not remembered costs a read, in the round trip its group reads all of those.
    /// </summary>
    public const int Entries = 20_000;

    // Longer than a gateway's 10 s between uploads, and short enough that an idle session does not stay.
    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(2) };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Entries, CompactionPercentage = 0.1 });

    public PamSession? Find(string orgId, Guid sessionId) => _cache.TryGetValue((orgId, sessionId), out PamSession? snapshot) ? snapshot : null;

    /// <summary>Call only with a snapshot as committed: read from the store, or written by a commit that succeeded.</summary>
    public void Remember(string orgId, PamSession snapshot) => _cache.Set((orgId, snapshot.Id), snapshot, EntryOptions);

    public void Forget(string orgId, Guid sessionId) => _cache.Remove((orgId, sessionId));

    public void Dispose() => _cache.Dispose();
}
