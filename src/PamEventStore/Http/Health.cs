using Marten;

namespace PamEventStore.Http;

public static class Health
{
    /// <summary>Anyone may ask; the database is asked at most this often.</summary>
    private static readonly TimeSpan Remembered = TimeSpan.FromSeconds(2);

    private sealed record Answer(DateTimeOffset At, bool Healthy);

    // One reference, swapped whole: concurrent requests never read half of an update.
    private static Answer _last = new(DateTimeOffset.MinValue, false);

    /// <summary><c>GET /health</c> (and <c>HEAD</c>, as load balancers ask), anonymous: 200 when the service can reach its database, 503 when it cannot.</summary>
    public static void MapHealth(this WebApplication app) =>
        app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], async (IDocumentStore store, TimeProvider clock, CancellationToken ct) =>
        {
            var last = _last;
            if (clock.GetUtcNow() - last.At > Remembered)
            {
                last = new Answer(clock.GetUtcNow(), await DatabaseAnswersAsync(store, ct));
                _last = last;
            }

            return last.Healthy
                ? Results.Ok(new { status = "ok" })
                : Problems.DatabaseUnavailable(ErrorResponses.DatabaseRetryAfterSeconds).ToResult();
        }).AllowAnonymous();

    private static async Task<bool> DatabaseAnswersAsync(IDocumentStore store, CancellationToken ct)
    {
        try
        {
            await using var session = store.QuerySession();
            await session.QueryAsync<int>("select 1", ct);
            return true;
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            return false;
        }
    }
}
