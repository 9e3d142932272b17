using Marten;
using Microsoft.Extensions.Caching.Memory;

namespace PamEventStore.Sessions;

/// <summary>What a session is bound to when it is created, and never after: its gateway and its project.</summary>
public sealed record SessionBinding(string? GatewayId, string ProjectId);

/// <summary>
/// The bindings of the sessions this node has served recently (in memory only). They never change, so
/// a caller can be checked against them before a request's body or a session's recording is read,
/// without a query of its own: an upload from another gateway is refused before its body, a reader
/// outside the session's project before the page. Every write is still decided by the session itself,
/// as stored.
/// </summary>
public sealed class SessionBindings : IDisposable
{
    /// <summary>Sessions remembered, least recently used evicted: ~250 bytes each.</summary>
    public const int Entries = 100_000;

    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(30) };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Entries, CompactionPercentage = 0.1 });

    /// <returns>The session's binding, remembered or loaded once; null when the org has no such session.</returns>
    public async ValueTask<SessionBinding?> OfAsync(IQuerySession db, string orgId, Guid sessionId, CancellationToken ct)
    {
        if (_cache.TryGetValue((orgId, sessionId), out SessionBinding? known)) return known;
        if (await db.LoadAsync<PamSession>(sessionId, ct) is not { } session) return null;
        return _cache.Set((orgId, sessionId), new SessionBinding(session.GatewayId, session.ProjectId), EntryOptions);
    }

    public void Dispose() => _cache.Dispose();
}
