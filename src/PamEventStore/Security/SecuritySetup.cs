using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Http;
using PamEventStore.Storage;

namespace PamEventStore.Security;

/// <summary>
/// Bearer tokens and the policies every endpoint is checked against. Fails closed: a token without
/// sub, org_id or a known actor_type is not a valid token (401), and every endpoint requires one.
/// </summary>
public static class SecuritySetup
{
    /// <summary>
    /// What an OIDC issuer's tokens may be signed with: its published public keys only. A token signed
    /// with a shared secret (HS256) is refused once an authority is configured.
    /// </summary>
    private static readonly string[] IssuerAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    public static void AddPamSecurity(this WebApplicationBuilder builder, LocalDataDirectory dataDirectory)
    {
        var options = builder.Configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        var signingKey = TokenSigning.Resolve(options, builder.Environment, dataDirectory);

        builder.Services
            .AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(jwt =>
            {
                // Keep claim names as issued (sub, not a SOAP URI).
                jwt.MapInboundClaims = false;
                jwt.TokenHandlers.Clear();
                jwt.TokenHandlers.Add(new CachingTokenHandler { MapInboundClaims = false });
                jwt.Authority = options.Authority;
                jwt.RequireHttpsMetadata = options.RequireHttpsMetadata;

                // An issuer's withdrawn signing key must stop being trusted within minutes, not the default 12 hours.
                jwt.AutomaticRefreshInterval = CachingTokenHandler.Reuse;
                jwt.RefreshInterval = TimeSpan.FromSeconds(30);
                jwt.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = options.Issuer,
                    ValidAudience = options.Audience,
                    ValidateIssuer = true,
                    ValidateAudience = true,
                    ValidateLifetime = true,
                    RequireExpirationTime = true,
                    ClockSkew = TimeSpan.FromSeconds(30),
                    IssuerSigningKey = signingKey,
                    ValidateIssuerSigningKey = true,
                    ValidAlgorithms = signingKey is null ? IssuerAlgorithms : [SecurityAlgorithms.HmacSha256],
                    NameClaimType = PamClaims.Subject,
                };
                jwt.Events = new JwtBearerEvents
                {
                    OnTokenValidated = context =>
                    {
                        if (MissingClaim(context.Principal!) is { } problem) context.Fail(problem);
                        else
                        {
                            SplitListClaims(context);
                            KeepEmptyProjectList(context);
                        }
                        return Task.CompletedTask;
                    },
                };
            });

        builder.Services.AddSingleton<IAuthorizationHandler, PamAuthorizationHandler>();
        builder.Services.AddSingleton<IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();
        builder.Services.AddAuthorizationBuilder()
            .SetDefaultPolicy(new AuthorizationPolicyBuilder(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().Build())
            .AddPolicy(PamPolicies.Gateway, p => p.RequireAuthenticatedUser().AddRequirements(new GatewayRequirement()))
            .AddPolicy(PamPolicies.GatewayOrCreate, p => p.RequireAuthenticatedUser().AddRequirements(new GatewayOrScopeRequirement(PamScopes.Create)))
            .AddPolicy(PamPolicies.Create, p => p.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(PamScopes.Create)))
            .AddPolicy(PamPolicies.Read, p => p.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(PamScopes.Read)));
    }

    /// <summary>
    /// <c>project_ids</c> and <c>scope</c> come as one string of values separated by spaces, or as a JSON
    /// array of values. The string is split here; each entry of an array is one value, kept whole: an entry
    /// holding a space (<c>["pay ments"]</c>) must not grant the projects <c>pay</c> and <c>ments</c>.
    /// </summary>
    private static void SplitListClaims(TokenValidatedContext context)
    {
        if (context.SecurityToken is not JsonWebToken token) return;
        var identity = (ClaimsIdentity)context.Principal!.Identity!;
        foreach (var type in new[] { PamClaims.ProjectIds, PamClaims.Scope })
        {
            // An array reads back as its JSON text, never as the value of its one claim.
            if (identity.FindAll(type).ToList() is not [var single] || !token.TryGetPayloadValue<string>(type, out var text) || text != single.Value) continue;

            identity.RemoveClaim(single);
            foreach (var value in single.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                identity.AddClaim(new Claim(type, value, ClaimValueTypes.String, single.Issuer, single.OriginalIssuer, identity));
        }
    }

    /// <summary>
    /// "project_ids": [] produces no claim at all, which would read as "every project". A token that
    /// lists its projects and lists none must see none: keep an empty claim so the list is known.
    /// </summary>
    private static void KeepEmptyProjectList(TokenValidatedContext context)
    {
        if (context.SecurityToken is JsonWebToken token
            && token.TryGetPayloadValue<object>(PamClaims.ProjectIds, out _)
            && !context.Principal!.HasClaim(c => c.Type == PamClaims.ProjectIds))
        {
            ((ClaimsIdentity)context.Principal.Identity!).AddClaim(new Claim(PamClaims.ProjectIds, ""));
        }
    }

    /// <summary>Why a validated token still cannot be used, or null when it can.</summary>
    public static string? MissingClaim(ClaimsPrincipal principal)
    {
        foreach (var claim in new[] { PamClaims.Subject, PamClaims.OrgId, PamClaims.ActorType })
        {
            if (string.IsNullOrWhiteSpace(principal.FindFirstValue(claim))) return $"The token has no '{claim}' claim.";
        }

        // Who the caller is must be one string each: of a list (["acme", "other"]) every check would take
        // the first value while nothing says the issuer meant that one; a number or null is not an id either.
        // (The token library types a string written as a round-trip date as a date: still a string.)
        foreach (var claim in new[] { PamClaims.Subject, PamClaims.OrgId, PamClaims.ActorType, PamClaims.GatewayId })
        {
            var values = principal.FindAll(claim).ToList();
            if (values.Count > 1 || values is [{ ValueType: not (ClaimValueTypes.String or ClaimValueTypes.DateTime) }])
                return $"The token's '{claim}' claim must be a single string.";
        }

        // The org is the tenant, used exactly as given (PamClaims.IsUsableOrgId says why).
        if (!PamClaims.IsUsableOrgId(principal.FindFirstValue(PamClaims.OrgId)!))
            return $"The token's '{PamClaims.OrgId}' claim contains whitespace or control characters.";

        // Who acted is stored with what they did, and a session's gateway is compared with its binding.
        foreach (var claim in new[] { PamClaims.Subject, PamClaims.GatewayId })
        {
            if (principal.FindFirstValue(claim) is { } value && PlainText.HasControlCharacter(value))
                return $"The token's '{claim}' claim contains control characters.";
        }

        var actorType = principal.FindFirstValue(PamClaims.ActorType);
        if (!PamClaims.ActorTypes.Contains(actorType)) return $"The token's actor_type '{actorType}' is not one of {string.Join(", ", PamClaims.ActorTypes)}.";
        if (actorType == "gateway" && string.IsNullOrWhiteSpace(principal.FindFirstValue(PamClaims.GatewayId)))
            return "A gateway token must carry a 'gateway_id' claim.";

        return null;
    }
}

/// <summary>A requirement decided from the token's claims alone, with a reason when it refuses.</summary>
public interface IClaimsRequirement : IAuthorizationRequirement
{
    /// <returns>Why the caller is refused, or null when allowed.</returns>
    string? Refuse(ClaimsPrincipal user);
}

/// <summary>
/// A scope held by a user or a machine identity. A gateway token uploads and ends its own sessions and
/// nothing else, whatever scopes it carries: every gateway of an org holds one, and a scope on it must
/// not open the org's other gateways' recordings.
/// </summary>
public sealed record ScopeRequirement(string Scope) : IClaimsRequirement
{
    public string? Refuse(ClaimsPrincipal user) =>
        user.FindFirstValue(PamClaims.ActorType) == "gateway" ? $"A gateway token only records its own sessions; '{Scope}' needs a user or identity token."
        : Caller.SplitScopes(user).Contains(Scope) ? null
        : $"The token lacks the '{Scope}' scope.";
}

public sealed record GatewayRequirement : IClaimsRequirement
{
    public static bool IsGateway(ClaimsPrincipal user) =>
        user.FindFirstValue(PamClaims.ActorType) == "gateway" && !string.IsNullOrEmpty(user.FindFirstValue(PamClaims.GatewayId));

    public string? Refuse(ClaimsPrincipal user) => IsGateway(user) ? null : "Only a gateway token may call this endpoint.";
}

public sealed record GatewayOrScopeRequirement(string Scope) : IClaimsRequirement
{
    public string? Refuse(ClaimsPrincipal user) =>
        GatewayRequirement.IsGateway(user) || Caller.SplitScopes(user).Contains(Scope) ? null : $"This needs a gateway token or the '{Scope}' scope.";
}

/// <summary>Decides every <see cref="IClaimsRequirement"/>, keeping the reason so the 403 can say what is missing.</summary>
public sealed class PamAuthorizationHandler : IAuthorizationHandler
{
    public Task HandleAsync(AuthorizationHandlerContext context)
    {
        foreach (var requirement in context.PendingRequirements.OfType<IClaimsRequirement>().ToList())
        {
            if (requirement.Refuse(context.User) is { } reason) context.Fail(new AuthorizationFailureReason(this, reason));
            else context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}

/// <summary>Answers 401 and 403 as problem details saying why, instead of an empty body.</summary>
public sealed class ProblemAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Challenged)
        {
            // The handler caches its result for the request, so this only reads why it refused.
            var failure = (await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme)).Failure;

            // Sets 401 and the WWW-Authenticate header; the body is ours.
            await context.ChallengeAsync(JwtBearerDefaults.AuthenticationScheme);
            var detail = failure is null ? "A bearer token is required." : $"The bearer token was refused: {failure.Message}";
            await Problems.Unauthorized(detail).ToResult().ExecuteAsync(context);
            return;
        }

        if (authorizeResult.Forbidden)
        {
            var reasons = authorizeResult.AuthorizationFailure?.FailureReasons.Select(r => r.Message).ToList() ?? [];
            var detail = reasons.Count > 0 ? string.Join(" ", reasons) : "The token does not allow this.";
            await Problems.Forbidden(detail).ToResult().ExecuteAsync(context);
            return;
        }

        await _default.HandleAsync(next, context, policy, authorizeResult);
    }
}
