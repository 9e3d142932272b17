using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace PamEventStore.Http;

/// <summary>A response that holds a scarce turn must be taken at a pace, or its connection is closed.</summary>
public static class ResponsePace
{
    /// <summary>
    /// Over HTTP/1.x Kestrel measures the pace while the response waits on its client and closes the
    /// connection of one slower than <paramref name="bytesPerSecond"/> after <paramref name="grace"/>.
    /// Kestrel paces HTTP/2 and HTTP/3 responses only server-wide (setting it here would throw), and the
    /// in-memory test server not at all.
    /// </summary>
    public static void Require(HttpContext http, int bytesPerSecond, TimeSpan grace)
    {
        if ((HttpProtocol.IsHttp11(http.Request.Protocol) || HttpProtocol.IsHttp10(http.Request.Protocol))
            && http.Features.Get<IHttpMinResponseDataRateFeature>() is { } pace)
        {
            pace.MinDataRate = new MinDataRate(bytesPerSecond, grace);
        }
    }
}
