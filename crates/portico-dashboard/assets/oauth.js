// The OAuth callback: auth put the tokens in the URL fragment, which never reaches the
// server; this moves them into the hidden form, removes them from the address bar and
// history, and posts the form, which sets the session cookies.
"use strict";
(function () {
  var params = new URLSearchParams(location.hash.replace(/^#/, ""));
  history.replaceState(null, "", location.pathname);
  var form = document.getElementById("oauth-complete");
  var access = params.get("access_token");
  var refresh = params.get("refresh_token");
  if (!access || !refresh) {
    var state = document.getElementById("oauth-state");
    state.className = "error";
    state.textContent = "Signing in with the provider did not finish: no token came back. ";
    var again = document.createElement("a");
    again.href = "/dashboard/sign-in";
    again.textContent = "Back to sign in";
    state.appendChild(again);
    return;
  }
  form.elements.access_token.value = access;
  form.elements.refresh_token.value = refresh;
  form.submit();
})();
