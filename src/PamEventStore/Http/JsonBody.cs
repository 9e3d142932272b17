using Microsoft.AspNetCore.Http.Features;

namespace PamEventStore.Http;

/// <summary>
/// An endpoint whose body is JSON read by Wolverine (creating a session). Before anything of it is read,
/// the body must be declared <c>application/json</c>, in UTF-8 if it names a charset (415 otherwise: the
/// reader would take <c>application/merge-patch+json</c>, a UTF-16 body or none declared at all), and may
/// be at most <see cref="MaxBytes"/> (413 past it, instead of the server's limit for whole recordings).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class JsonBodyAttribute(int maxBytes) : Attribute
{
    public int MaxBytes { get; } = maxBytes;
}

public static class JsonBodies
{
    /// <summary>After routing, before the endpoint reads its body.</summary>
    public static void UseJsonBodies(this WebApplication app) =>
        app.Use(async (http, next) =>
        {
            if (http.GetEndpoint()?.Metadata.GetMetadata<JsonBodyAttribute>() is { } json)
            {
                if (!RequestBody.Declares(http.Request.ContentType, "application/json"))
                {
                    await Problems.UnsupportedMediaType(http.Request.ContentType, "application/json").ToResult().ExecuteAsync(http);
                    return;
                }

                if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = json.MaxBytes;
            }

            await next(http);
        });
}
