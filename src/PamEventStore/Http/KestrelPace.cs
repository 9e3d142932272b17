using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace PamEventStore.Http;

/// <summary>
/// A request that holds a scarce turn must move at a pace, or its connection is closed: over HTTP/1.x
/// Kestrel measures it (a body as it arrives, a response while it waits on its client) and closes the
/// connection of one slower than the rate after the grace. Kestrel paces HTTP/2 and HTTP/3 only
/// server-wide (setting it per request would throw), and the in-memory test server not at all.
/// </summary>
public static class KestrelPace
{
    /// <returns>Whether Kestrel now paces the body (and will cut a slow one off itself).</returns>
    public static bool OfBody(HttpRequest request, int bytesPerSecond, TimeSpan grace)
    {
        if (!PacedPerRequest(request) || request.HttpContext.Features.Get<IHttpMinRequestBodyDataRateFeature>() is not { } pace) return false;

        pace.MinDataRate = new MinDataRate(bytesPerSecond, grace);
        return true;
    }

    public static void OfResponse(HttpContext http, int bytesPerSecond, TimeSpan grace)
    {
        if (PacedPerRequest(http.Request) && http.Features.Get<IHttpMinResponseDataRateFeature>() is { } pace)
        {
            pace.MinDataRate = new MinDataRate(bytesPerSecond, grace);
        }
    }

    private static bool PacedPerRequest(HttpRequest request) =>
        HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol);
}
