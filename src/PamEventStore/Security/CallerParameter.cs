using System.Reflection;
using System.Runtime.CompilerServices;
using JasperFx;
using JasperFx.CodeGeneration.Frames;
using JasperFx.CodeGeneration.Model;
using Wolverine.Http;
using Wolverine.Http.CodeGen;

namespace PamEventStore.Security;

/// <summary>
/// Lets any endpoint take a <see cref="Caller"/> parameter: the generated handler builds it with
/// <see cref="Caller.From"/> from the authenticated request. Identity is read in that one place, and
/// Wolverine never mistakes the parameter for the request body.
/// </summary>
public sealed class CallerParameter : IParameterStrategy
{
    // One Caller per endpoint, shared by its Validate and handler methods.
    private readonly ConditionalWeakTable<HttpChain, Variable> _callers = new();

    public bool TryMatch(HttpChain chain, IServiceContainer container, ParameterInfo parameter, out Variable? variable)
    {
        variable = parameter.ParameterType == typeof(Caller)
            ? _callers.GetValue(chain, _ => new MethodCall(typeof(Caller), nameof(Caller.From)).ReturnVariable!)
            : null;
        return variable is not null;
    }
}
