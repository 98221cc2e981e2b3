from shop import users


def greeting(user_id):
    return "Hello, " + users.get_usr(user_id).title()
