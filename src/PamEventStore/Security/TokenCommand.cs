using JasperFx.CommandLine;
using PamEventStore.Storage;

namespace PamEventStore.Security;

public sealed class TokenInput : NetCoreInput
{
    [Description("The organisation (tenant) the token acts in")]
    public string OrgFlag { get; set; } = "";

    [Description("Issue a gateway token for this gateway id")]
    public string? GatewayFlag { get; set; }

    [Description("Issue a user token for this user id")]
    public string? UserFlag { get; set; }

    [Description("Issue a machine identity token for this identity id")]
    public string? IdentityFlag { get; set; }

    [Description("Space-separated scopes, e.g. \"pam.sessions.read pam.sessions.create\"")]
    public string? ScopeFlag { get; set; }

    [Description("Space-separated project ids the token is limited to")]
    [FlagAlias("projects")]
    public string? ProjectsFlag { get; set; }

    [Description("Lifetime in hours (default 12)")]
    public int HoursFlag { get; set; } = 12;
}

/// <summary><c>dotnet run --project src/PamEventStore -- token --org ORG --gateway GW</c>: prints a signed token.</summary>
[Description("Print a signed bearer token (gateway, user or identity) for development", Name = "token")]
public sealed class TokenCommand : JasperFxCommand<TokenInput>
{
    /// <summary>The longest a development token may live: a year.</summary>
    public const int MaxHours = 24 * 365;

    public override bool Execute(TokenInput input)
    {
        var actors = new[] { input.GatewayFlag, input.UserFlag, input.IdentityFlag }.Count(a => !string.IsNullOrWhiteSpace(a));
        if (string.IsNullOrWhiteSpace(input.OrgFlag) || actors != 1)
        {
            Console.Error.WriteLine("Give --org and exactly one of --gateway, --user or --identity.");
            return false;
        }

        // What the service would refuse anyway is refused here, not printed as a token that never works.
        if (!PamClaims.IsUsableOrgId(input.OrgFlag))
        {
            Console.Error.WriteLine("--org holds whitespace or control characters: the service refuses such a token.");
            return false;
        }

        if (input.HoursFlag is <= 0 or > MaxHours)
        {
            Console.Error.WriteLine($"--hours must be between 1 and {MaxHours} (a year).");
            return false;
        }

        if (input.GatewayFlag is not null && !string.IsNullOrWhiteSpace(input.ScopeFlag))
        {
            Console.Error.WriteLine("A gateway token takes no --scope: it uploads to and ends its own sessions, and reads nothing.");
            return false;
        }

        using var host = input.BuildHost();
        var configuration = host.Services.GetRequiredService<IConfiguration>();
        var options = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        var key = TokenSigning.Resolve(options, host.Services.GetRequiredService<IHostEnvironment>(), host.Services.GetRequiredService<LocalDataDirectory>());
        if (key is null)
        {
            Console.Error.WriteLine("Tokens are issued by the configured OIDC authority (Auth:Authority); there is no signing key here.");
            return false;
        }

        var scopes = input.ScopeFlag?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        var projects = input.ProjectsFlag?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var claims = input.GatewayFlag is { } gateway
            ? TokenClaims.ForGateway(input.OrgFlag, gateway) with { ProjectIds = projects }
            : new TokenClaims(input.OrgFlag, (input.UserFlag ?? input.IdentityFlag)!, input.UserFlag is null ? "identity" : "user", Scopes: scopes, ProjectIds: projects);

        Console.WriteLine(DevelopmentTokens.Issue(claims, options, key, TimeSpan.FromHours(input.HoursFlag), DateTimeOffset.UtcNow));
        return true;
    }
}
