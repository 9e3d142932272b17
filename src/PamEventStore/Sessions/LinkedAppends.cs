using JasperFx.Events;
using PamEventStore.Crypto;

namespace PamEventStore.Sessions;

/// <summary>Every event of a session's stream is appended linked onto the one before it (<see cref="SessionChain"/>).</summary>
public static class LinkedAppends
{
    /// <summary>Appends the events to a stream fetched for writing (its row lock held), each linked onto the one before.</summary>
    public static void AppendLinked(this IEventStream<PamSession> stream, SessionChain chain, string orgId, Guid sessionId, IEnumerable<SessionEvent> events)
    {
        var head = stream.Events.Count > 0 ? ((SessionEvent)stream.Events[^1].Data).Link : stream.Aggregate?.ChainHead;
        var linked = chain.Extend(orgId, sessionId, VersionAfterAppends(stream), head, events);
        if (linked.Length > 0) stream.AppendMany(linked);
    }

    /// <summary>Where the chain will stand once what was appended to the stream is saved.</summary>
    public static ChainPosition Position(this IEventStream<PamSession> stream) =>
        new(VersionAfterAppends(stream), ((SessionEvent)stream.Events[^1].Data).Link!);

    private static long VersionAfterAppends(IEventStream<PamSession> stream) => (stream.StartingVersion ?? 0) + stream.Events.Count;

    /// <summary>The first event of a new stream, linked onto nothing.</summary>
    public static SessionStarted Linked(this SessionStarted started, SessionChain chain, string orgId) =>
        (SessionStarted)chain.Extend(orgId, started.SessionId, 0, null, [started])[0];
}
