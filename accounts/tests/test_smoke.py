def test_register_then_login_then_me(account):
    response = account.client.get("/api/v1/auth/me")
    assert response.status_code == 200
    assert response.json()["email"] == account.email
