using System.Text.Json;
using System.Text.Json.Serialization;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// A session's snapshot (<see cref="PamSession"/>) stored in the database no longer reads: changed there
/// outside the service, or written by a newer version of it. Nothing can be decided or shown from it;
/// its events still can be checked (<c>GET /{id}/integrity</c>).
/// </summary>
public sealed class UnreadableSessionException : Exception
{
    public UnreadableSessionException(Exception inner) : base("A session's stored snapshot does not read as a session: " + inner.Message, inner)
    {
    }

    public UnreadableSessionException(string reason) : base("A session's stored snapshot does not read as a session: " + reason)
    {
    }
}

/// <summary>
/// Reads and writes a session's snapshot exactly as the store's serializer does, except that a snapshot
/// that does not read throws <see cref="UnreadableSessionException"/> instead of a JSON error, wherever
/// it is loaded: it is answered as a problem of that session (409 <c>session-unreadable</c>), not as a
/// failure of the node, and an upload of another session committed in the same group is not held up by it.
/// </summary>
public sealed class SessionSnapshotConverter : JsonConverter<PamSession>
{
    private JsonSerializerOptions? _withoutThis;

    public override PamSession? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        PamSession? session;
        try
        {
            session = JsonSerializer.Deserialize<PamSession>(ref reader, WithoutThis(options));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or FormatException or ArgumentException or OverflowException)
        {
            throw new UnreadableSessionException(e);
        }

        // An object that reads but lacks what every session has from its start ({} reads as all defaults),
        // or holds what none can: served, it would show a recorded session as empty, or decide from it.
        return session is null || IsSession(session) ? session : throw new UnreadableSessionException("it lacks what every session has from its start, or holds a negative count.");
    }

    private static bool IsSession(PamSession session) =>
        session.Id != Guid.Empty && !string.IsNullOrEmpty(session.ProjectId) && !string.IsNullOrEmpty(session.ResourceType) && session.CreatedAt != default && session.Version > 0
        && session.ResourceName is not null && session.AccountName is not null && session.UserId is not null && session.Gaps is not null
        && session.BatchCount >= 0 && session.EventCount >= 0 && session.PlaintextBytes >= 0 && session.GapCount >= 0 && session.MissingBytes >= 0;

    public override void Write(Utf8JsonWriter writer, PamSession value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, WithoutThis(options));

    /// <summary>The store's own options, less this converter (whose job they then do); made once, on first use, when they are settled.</summary>
    private JsonSerializerOptions WithoutThis(JsonSerializerOptions options)
    {
        if (_withoutThis is { } made) return made;
        var copy = new JsonSerializerOptions(options);
        copy.Converters.Remove(this);
        return _withoutThis = copy;
    }
}
