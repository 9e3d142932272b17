using Microsoft.AspNetCore.Diagnostics;
using PamEventStore.Crypto;
using PamEventStore.Storage;

namespace PamEventStore.Http;

/// <summary>
/// Makes every error a problem+json body with a stable type, including the ones no endpoint wrote:
/// an unknown route, a path segment that is not a UUID, a body Kestrel refused, an unhandled exception.
/// </summary>
public static partial class ErrorResponses
{
    [System.Text.RegularExpressions.GeneratedRegex(@"'?\bPamEventStore(\.[A-Za-z0-9_`+]+)+'?")]
    private static partial System.Text.RegularExpressions.Regex InternalTypeName();

    /// <summary>Seconds a caller is asked to wait when the database cannot be reached (a failover takes about this long).</summary>
    public const int DatabaseRetryAfterSeconds = 5;

    /// <summary>Seconds a caller is asked to wait when an org's keys do not open on this node (another node may hold the master key).</summary>
    public const int KeysRetryAfterSeconds = 30;

    public static void AddPamErrorResponses(this IServiceCollection services)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            // Wolverine answers a JSON body it could not read (malformed, past Kestrel's size limit, too
            // slow, or framed so that Kestrel's reader throws) with a generic httpstatuses.com type: give it ours.
            var problem = context.ProblemDetails;
            if (problem.Type?.StartsWith("https://httpstatuses.com/", StringComparison.Ordinal) != true) return;
            switch (problem.Status)
            {
                case StatusCodes.Status400BadRequest:
                    problem.Type = Problems.TypePrefix + "invalid-request";
                    // The JSON reader names the service's own types ("could not be converted to PamEventStore...."): say what, not where.
                    if (problem.Detail is { } detail) problem.Detail = InternalTypeName().Replace(detail, "the request body");
                    break;
                case StatusCodes.Status408RequestTimeout:
                    problem.Type = Problems.TypePrefix + "request-timeout";
                    break;
                // Kestrel's reader threw an IOException (a chunk size past 2 GiB): the request's framing, not the node.
                case StatusCodes.Status500InternalServerError when problem.Extensions.TryGetValue("exceptionType", out var thrown)
                                                                  && thrown?.ToString() == typeof(IOException).FullName
                                                                  && !context.HttpContext.Response.HasStarted:
                    context.HttpContext.Response.StatusCode = StatusCodes.Status400BadRequest;
                    (problem.Status, problem.Type, problem.Title) = (StatusCodes.Status400BadRequest, Problems.TypePrefix + "invalid-request", "The request body could not be read");
                    problem.Detail = "The request body could not be read: its framing is malformed.";
                    foreach (var key in problem.Extensions.Keys.Where(k => k != "traceId").ToList()) problem.Extensions.Remove(key);
                    break;
                case StatusCodes.Status413PayloadTooLarge:
                    var tooLarge = Problems.BodyOverServerLimit(ServerBodyLimit(context.HttpContext));
                    (problem.Type, problem.Title, problem.Detail) = (tooLarge.Type, tooLarge.Title, tooLarge.Detail);
                    foreach (var (key, value) in tooLarge.Extensions) problem.Extensions[key] = value;
                    break;
            }
        });
        services.AddExceptionHandler<ProblemExceptionHandler>();
    }

    /// <summary>The server's own limit on this request's body (Kestrel's <c>MaxRequestBodySize</c>), when it has one.</summary>
    public static long? ServerBodyLimit(HttpContext http) =>
        http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;

    public static void UsePamErrorResponses(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            var problem = http.Response.StatusCode switch
            {
                // An endpoint matched but its route value did not bind: a session id that is no UUID.
                404 when http.GetEndpoint() is not null => Problems.SessionNotFound(http.Request.RouteValues[CanonicalSessionIds.RouteValue]?.ToString() ?? http.Request.Path),
                404 => Problems.RouteNotFound(http.Request.Path),
                405 => Problems.Create(405, "method-not-allowed", "Method not allowed", $"{http.Request.Method} is not served at {http.Request.Path}."),
                // Wolverine's JSON endpoints (creating a session) read nothing but JSON.
                415 => Problems.UnsupportedMediaType(http.Request.ContentType, "application/json"),
                var status => Problems.Create(status, "http-" + status, "Request failed", $"The request failed with status {status}."),
            };
            await problem.ToResult().ExecuteAsync(http);
        });
    }
}

/// <summary>
/// Bodies Kestrel refuses (too large, malformed) keep their 4xx; a database that cannot be reached, or
/// a session whose stream another request or node holds longer than the service waits, is a 503 with
/// <c>Retry-After</c> (gateways send the batch again, nothing is lost), as is an org whose keys do not
/// open on this node; a session whose stored state does not read is a 409 of that session; anything
/// else is a 500 that says nothing internal.
/// </summary>
public sealed class ProblemExceptionHandler(ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var problem = exception switch
        {
            BadHttpRequestException { StatusCode: 413 } => Problems.BodyOverServerLimit(ErrorResponses.ServerBodyLimit(httpContext)),
            BadHttpRequestException { StatusCode: 408 } => Problems.BodyTooSlow(exception.Message),
            BadHttpRequestException bad => Problems.InvalidRequest(bad.Message),
            _ when DatabaseFailures.IsUnavailable(exception) => Problems.DatabaseUnavailable(ErrorResponses.DatabaseRetryAfterSeconds),
            _ when DatabaseFailures.IsStreamLocked(exception) => Problems.SessionLocked(ErrorResponses.DatabaseRetryAfterSeconds),
            OrgKeysUnavailableException => Problems.KeysUnavailable(ErrorResponses.KeysRetryAfterSeconds),
            // The request's route values are cleared by now; the feature kept them.
            UnreadableSessionException => Problems.SessionUnreadable(httpContext.Features.Get<IExceptionHandlerFeature>()?.RouteValues?[CanonicalSessionIds.RouteValue]?.ToString() ?? "of this request"),
            _ => null,
        };

        if (exception is OrgKeysUnavailableException or UnreadableSessionException)
        {
            // Not the caller's doing, nor a passing one: an operator must restore a master key or the ring,
            // or find out who changed a session's stored state.
            logger.LogError(exception, "{Method} {Path} answered {Type}", httpContext.Request.Method, httpContext.Request.Path, problem!.Type);
        }
        else if (problem?.Status == StatusCodes.Status503ServiceUnavailable)
        {
            logger.LogWarning(exception, "{Method} {Path} answered {Type}", httpContext.Request.Method, httpContext.Request.Path, problem.Type);
        }

        if (problem is null)
        {
            logger.LogError(exception, "Unhandled exception for {Method} {Path}", httpContext.Request.Method, httpContext.Request.Path);
            problem = Problems.Unexpected(PamEventStore.Security.Caller.TraceId(httpContext));
        }

        await problem.ToResult().ExecuteAsync(httpContext);
        return true;
    }
}
