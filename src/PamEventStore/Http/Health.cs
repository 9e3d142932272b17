using Marten;

namespace PamEventStore.Http;

public static class Health
{
    /// <summary><c>GET /health</c>, anonymous: 200 when the service can reach its database, 503 when it cannot.</summary>
    public static void MapHealth(this WebApplication app) =>
        app.MapGet("/health", async (IDocumentStore store, CancellationToken ct) =>
        {
            try
            {
                await using var session = store.QuerySession();
                await session.QueryAsync<int>("select 1", ct);
                return Results.Ok(new { status = "ok" });
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
            {
                return Problems.Create(503, "database-unavailable", "Database unavailable", "The service cannot reach PostgreSQL.").ToResult();
            }
        }).AllowAnonymous();
}
