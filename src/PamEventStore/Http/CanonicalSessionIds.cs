namespace PamEventStore.Http;

/// <summary>
/// A session id in a path is a UUID in its canonical form: 36 characters, lowercase hex digits and
/// hyphens, as sessions are created and answered. Parsing a UUID also reads <c>{…}</c>, <c>(…)</c>, 32
/// digits without hyphens, uppercase and padded ids as the same id, so one session would have many
/// paths, and a proxy or access rule in front of the service that goes by the path would not know them
/// for one. Anything else is answered as no session (404 <c>session-not-found</c>).
/// </summary>
public static class CanonicalSessionIds
{
    public const string RouteValue = "sessionId";

    /// <summary>After authorization, as a path id that is no UUID at all is answered.</summary>
    public static void UseCanonicalSessionIds(this WebApplication app) =>
        app.Use(async (http, next) =>
        {
            if (http.Request.RouteValues.TryGetValue(RouteValue, out var value) && value is string raw && !IsCanonical(raw))
            {
                await Problems.SessionNotFound(raw).ToResult().ExecuteAsync(http);
                return;
            }

            await next(http);
        });

    public static bool IsCanonical(string raw) =>
        raw.Length == 36 && !raw.Any(char.IsAsciiLetterUpper) && Guid.TryParseExact(raw, "D", out _);
}
